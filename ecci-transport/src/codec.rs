//! Glue between our types and rumqttc's MQTT 3.1.1 packet codec, shared by the client and
//! the embedded broker. Only this crate names rumqttc, and only behind this module and its users.

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, v4::Packet};

use crate::types::QoS;

/// The largest MQTT remaining length (MQTT 3.1.1 §2.2.3).
const MAX_REMAINING: usize = 268_435_455;

/// The largest MQTT packet: the largest remaining length behind a 5-byte fixed header
/// (256 MiB; what mosquitto and paho accept by default).
pub(crate) const MAX_PACKET: usize = MAX_REMAINING + 5;

pub(crate) fn to_wire(qos: QoS) -> mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
    }
}

pub(crate) fn from_wire(qos: mqttbytes::QoS) -> QoS {
    match qos {
        mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// The size of the PUBLISH packet for this topic, QoS and payload, or `usize::MAX` when no
/// MQTT packet can be that large.
pub(crate) fn publish_size(topic: &str, qos: QoS, payload: usize) -> usize {
    let id = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let remaining = 2 + topic.len() + id + payload;
    if remaining > MAX_REMAINING {
        return usize::MAX;
    }
    let len_len = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + len_len + remaining
}

/// Appends `packet` to `buf`. Packets are checked for size before they get here, so a
/// failure is a bug in this crate, reported as a protocol error rather than a panic.
pub(crate) fn encode(packet: &Packet, buf: &mut BytesMut) -> Result<(), String> {
    packet
        .write(buf, usize::MAX)
        .map(drop)
        .map_err(|e| format!("cannot encode {packet:?}: {e}"))
}

/// What the next packet in a read buffer is.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A whole packet, removed from the buffer.
    Packet(Packet),
    /// More bytes are needed; at least this many.
    NeedMore(usize),
}

/// Takes the next packet out of `buf`, accepting packets up to `max` bytes.
pub(crate) fn decode(buf: &mut BytesMut, max: usize) -> Result<Decoded, String> {
    match Packet::read(buf, max) {
        Ok(packet) => Ok(Decoded::Packet(packet)),
        Err(mqttbytes::Error::InsufficientBytes(n)) => Ok(Decoded::NeedMore(n)),
        Err(e) => Err(e.to_string()),
    }
}

/// The fixed header at the start of `buf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The first byte: packet type and flags.
    pub(crate) byte0: u8,
    /// The length of the fixed header (2 to 5 bytes).
    pub(crate) len: usize,
    /// The remaining length: the bytes after the fixed header.
    pub(crate) remaining: usize,
}

impl Header {
    /// The whole packet's size.
    pub(crate) fn size(&self) -> usize {
        self.len + self.remaining
    }

    /// Whether it is a PUBLISH.
    pub(crate) fn is_publish(&self) -> bool {
        self.byte0 >> 4 == 3
    }
}

/// Reads the fixed header at the start of `buf` without consuming anything: `None` while
/// it is incomplete; an error when the remaining length is malformed (more than 4 bytes).
/// Lets the reader see a packet's size before any of its body arrived.
pub(crate) fn peek_header(buf: &[u8]) -> Result<Option<Header>, String> {
    let Some(&byte0) = buf.first() else {
        return Ok(None);
    };
    let mut remaining = 0usize;
    for (i, &b) in buf[1..].iter().take(4).enumerate() {
        remaining |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some(Header {
                byte0,
                len: i + 2,
                remaining,
            }));
        }
    }
    if buf.len() >= 5 {
        return Err("malformed remaining length (more than 4 bytes)".to_owned());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rumqttc::mqttbytes::v4::Publish;

    #[track_caller]
    fn check(topic: &str, qos: QoS, payload: usize) {
        let mut buf = BytesMut::new();
        let p = Publish::from_bytes(topic, to_wire(qos), Bytes::from(vec![0u8; payload]));
        let mut p = p;
        p.pkid = u16::from(qos != QoS::AtMostOnce);
        encode(&Packet::Publish(p), &mut buf).unwrap();
        assert_eq!(publish_size(topic, qos, payload), buf.len());
    }

    #[test]
    fn publish_sizes_match_the_codec() {
        check("a", QoS::AtMostOnce, 0);
        check("a/b", QoS::AtLeastOnce, 100);
        check("a/b", QoS::ExactlyOnce, 20_000);
        check("topic", QoS::ExactlyOnce, 3_000_000);
    }

    proptest::proptest! {
        #[test]
        fn publish_size_matches_the_codec_everywhere(
            topic in "[a-z/]{1,40}",
            qos in 0u8..3,
            // Around every change of the remaining-length width.
            payload in proptest::sample::select(vec![0usize, 1, 90, 120, 127, 128, 16_300, 16_383, 16_384, 2_097_100, 2_097_151]),
        ) {
            let qos = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
            check(&topic, qos, payload);
        }
    }

    #[test]
    fn headers_are_read_before_the_body() {
        for payload in [0usize, 100, 20_000, 3_000_000] {
            let mut buf = BytesMut::new();
            let mut p = Publish::from_bytes(
                "t/x",
                to_wire(QoS::ExactlyOnce),
                Bytes::from(vec![1u8; payload]),
            );
            p.pkid = 9;
            encode(&Packet::Publish(p), &mut buf).unwrap();
            let whole = buf.len();
            let header = peek_header(&buf[..6]).unwrap().unwrap();
            assert!(header.is_publish());
            assert_eq!(header.size(), whole);
            assert_eq!(
                header.size(),
                publish_size("t/x", QoS::ExactlyOnce, payload)
            );
        }
        assert_eq!(peek_header(&[]), Ok(None));
        assert_eq!(peek_header(&[0x30, 0x80]), Ok(None));
        assert!(peek_header(&[0x30, 0xff, 0xff, 0xff, 0xff]).is_err());
        let max = peek_header(&[0x30, 0xff, 0xff, 0xff, 0x7f])
            .unwrap()
            .unwrap();
        assert_eq!(max.size(), MAX_PACKET);
    }

    #[test]
    fn round_trip_and_partial_frames() {
        let mut buf = BytesMut::new();
        let mut p =
            Publish::from_bytes("x/y", to_wire(QoS::ExactlyOnce), Bytes::from_static(b"hi"));
        p.pkid = 7;
        encode(&Packet::Publish(p.clone()), &mut buf).unwrap();
        let mut half = buf.split_to(4);
        assert!(matches!(decode(&mut half, 1024), Ok(Decoded::NeedMore(_))));
        half.extend_from_slice(&buf);
        match decode(&mut half, 1024) {
            Ok(Decoded::Packet(Packet::Publish(q))) => assert_eq!(q, p),
            other => panic!("{other:?}"),
        }
        assert!(half.is_empty());
    }
}
