//! Glue between our types and rumqttc's MQTT 3.1.1 packet codec, shared by the client and
//! the embedded broker. Only this crate names rumqttc, and only behind this module and its users.

use bytes::BytesMut;
use rumqttc::mqttbytes::{self, v4::Packet};

use crate::types::QoS;

/// The largest MQTT remaining length (MQTT 3.1.1 §2.2.3).
const MAX_REMAINING: usize = 268_435_455;

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
