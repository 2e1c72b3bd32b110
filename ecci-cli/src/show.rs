//! Turns one MQTT message into one line of text or JSON, whatever the payload holds.
//!
//! Everything here reads untrusted input: envelopes go through the data-only pickle
//! decoder with its default limits, JSON through serde_json, and every piece of text shown
//! has its control characters escaped and is cut to a length, so one message is always
//! exactly one line and a payload cannot drive the terminal. The signatures of the
//! fileManager's presigned URLs (`putURL`, `getURL`) are hidden: a line shown or saved is
//! never a credential.

use ecci_proto::envelope::{Envelope, EnvelopeError};
use ecci_proto::file::PresignedUrl;
use ecci_proto::pickle::{self, DecodeLimits, Value};
use ecci_proto::platform::LogRecord;
use ecci_proto::sequence::{Ack, E2e, Seq};
use ecci_proto::topic::{AppTopic, Topic};
use serde_json::json;

use crate::repr::{cut, repr};

/// How lines are written.
#[derive(Debug, Clone)]
pub(crate) struct Style {
    pub(crate) json: bool,
    pub(crate) max_len: usize,
    /// The log records' topic prefix.
    pub(crate) pre_topic: String,
}

/// `err` and its sources, joined by `: `.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// `s` with control and invisible characters escaped, cut to `max` characters.
pub(crate) fn clean(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max.saturating_mul(4)));
    for c in s.chars() {
        if out.len() > max.saturating_mul(4) {
            break;
        }
        if c.is_control() || crate::repr::is_invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    cut(out, max)
}

/// The app id a platform JSON payload names, if it is JSON with a string `app_id`.
pub(crate) fn json_app_id(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    value.get("app_id")?.as_str().map(str::to_owned)
}

/// One line for the message `payload` received on `topic`.
pub(crate) fn line(topic: &str, payload: &[u8], style: &Style) -> String {
    match Topic::parse_with_log_pre_topic(topic, &style.pre_topic) {
        Ok(Topic::App(t)) => app(topic, &t, payload, style),
        Ok(Topic::Log(_)) => log(topic, payload, style),
        Ok(Topic::Platform(_)) => platform(topic, payload, style),
        Err(_) => other(topic, payload, style),
    }
}

pub(crate) fn decode(payload: &[u8]) -> Result<Envelope, String> {
    decode_with_seq(payload).0
}

/// What a message carries beside `type` and `contents` (`ecci_proto::sequence`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Extensions {
    /// Its sequence number, if a Rust sender numbered it.
    pub(crate) seq: Option<Sequenced>,
    /// Whether it is an end-to-end acknowledgement (`ecci_ack`) from the receiver of a
    /// stream back to its sender.
    pub(crate) ack: bool,
}

/// A message's sequence number and, when its sender repairs the stream (end-to-end
/// delivery), the lowest number it still sends again.
#[derive(Clone, Copy)]
pub(crate) struct Sequenced {
    pub(crate) seq: Seq,
    pub(crate) base: Option<u64>,
}

/// Like [`decode`], with the envelope's sequence-number extension (`'ecci_seq'`) when it
/// has a well-formed one, even if the rest is not a valid envelope.
pub(crate) fn decode_with_seq(payload: &[u8]) -> (Result<Envelope, String>, Extensions) {
    let value = match pickle::decode(payload, &DecodeLimits::default()) {
        Ok(value) => value,
        Err(e) => {
            return (
                Err(chain(&EnvelopeError::NotPickle(e))),
                Extensions::default(),
            );
        }
    };
    let seq = Seq::read(&value).map(|seq| Sequenced {
        seq,
        base: E2e::read(&value).map(|e| e.base),
    });
    let ext = Extensions {
        seq,
        ack: Ack::read(&value).is_some(),
    };
    let envelope = Envelope::from_value(value).map(|mut envelope| {
        hide_signatures(&mut envelope.contents);
        envelope
    });
    (envelope.map_err(|e| chain(&e)), ext)
}

/// The URLs of a fileManager message (keys `putURL`, `getURL` of the contents) with their
/// query, which carries the signature, redacted.
fn hide_signatures(contents: &mut Value) {
    let Value::Dict(pairs) = contents else { return };
    for (key, value) in pairs {
        if let (Value::Str(k), Value::Str(url)) = (&*key, &mut *value) {
            if k == "putURL" || k == "getURL" {
                *url = PresignedUrl::new(std::mem::take(url)).to_string();
            }
        }
    }
}

fn app(topic: &str, t: &AppTopic, payload: &[u8], style: &Style) -> String {
    let envelope = decode(payload);
    if style.json {
        let mut obj = json!({
            "topic": topic,
            "mountpoint": t.mountpoint.as_ref().map(|m| m.as_str()),
            "broker": t.broker.as_str(),
            "app": t.app.as_str(),
            "kind": t.kind.as_str(),
            "sender": t.sender.as_str(),
            "receiver": t.receiver.as_str(),
        });
        match envelope {
            Ok(e) => {
                obj["type"] = json!(e.kind.as_str());
                obj["contents"] = json!(repr(&e.contents, style.max_len));
            }
            Err(reason) => obj["error"] = json!(format!("undecodable: {reason}")),
        }
        return obj.to_string();
    }
    let head = format!(
        "{} → {}",
        clean(t.sender.as_str(), style.max_len),
        clean(t.receiver.as_str(), style.max_len)
    );
    match envelope {
        Ok(e) => format!("{head} [{}] {}", e.kind, repr(&e.contents, style.max_len)),
        Err(reason) => format!("{head} undecodable: {reason}"),
    }
}

fn log(topic: &str, payload: &[u8], style: &Style) -> String {
    if style.json {
        return json_line(topic, payload);
    }
    match serde_json::from_slice::<LogRecord>(payload) {
        Ok(r) => {
            let info = &r.log_info;
            let mut s = format!(
                "{} {} {} {}: {}",
                info.time,
                info.level,
                clean(r.container_name.as_str(), style.max_len),
                clean(&info.name, style.max_len),
                clean(&info.message, style.max_len),
            );
            if !info.kv.is_empty() {
                let kv: serde_json::Map<String, serde_json::Value> =
                    info.kv.iter().cloned().collect();
                s.push(' ');
                s.push_str(&clean(
                    &serde_json::Value::Object(kv).to_string(),
                    style.max_len,
                ));
            }
            s
        }
        Err(e) => format!(
            "{} undecodable: not a log record: {e}",
            clean(topic, style.max_len)
        ),
    }
}

fn platform(topic: &str, payload: &[u8], style: &Style) -> String {
    if style.json {
        return json_line(topic, payload);
    }
    let topic = clean(topic, style.max_len);
    match as_sent(payload) {
        Ok(text) => format!("{topic} {}", clean(text, style.max_len)),
        Err(e) => format!("{topic} undecodable: not JSON: {e}"),
    }
}

/// The payload's text as it was sent, once it is known to be JSON: the keys in their
/// order and the sender's spacing, which a re-serialised value would hide (`serde_json`
/// sorts keys), and which is what tells a payload from Python's `json.dumps` apart.
fn as_sent(payload: &[u8]) -> Result<&str, serde_json::Error> {
    serde_json::from_slice::<serde_json::Value>(payload)?;
    // Valid JSON is valid UTF-8.
    Ok(std::str::from_utf8(payload).unwrap_or_default())
}

/// `{"topic": …, "json": …}`, or `{"topic": …, "error": …}` when the payload is not JSON.
fn json_line(topic: &str, payload: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => json!({ "topic": topic, "json": v }).to_string(),
        Err(e) => {
            json!({ "topic": topic, "error": format!("undecodable: not JSON: {e}") }).to_string()
        }
    }
}

/// A topic outside the ECCI grammar (from `--topic`): JSON, else an envelope, else bytes.
fn other(topic: &str, payload: &[u8], style: &Style) -> String {
    if style.json {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) {
            return json!({ "topic": topic, "json": v }).to_string();
        }
    } else if let Ok(text) = as_sent(payload) {
        return format!(
            "{} {}",
            clean(topic, style.max_len),
            clean(text, style.max_len)
        );
    }
    let shown = match decode(payload) {
        Ok(e) => format!("[{}] {}", e.kind, repr(&e.contents, style.max_len)),
        Err(_) => repr(&Value::Bytes(payload.to_vec()), style.max_len),
    };
    if style.json {
        json!({ "topic": topic, "contents": shown }).to_string()
    } else {
        format!("{} {shown}", clean(topic, style.max_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecci_proto::pickle::Protocol;

    fn text() -> Style {
        Style {
            json: false,
            max_len: 60,
            pre_topic: "toEdgeAI".into(),
        }
    }

    #[track_caller]
    fn check(topic: &str, payload: &[u8], json: bool, expected: &str) {
        let style = Style { json, ..text() };
        assert_eq!(line(topic, payload, &style), expected);
    }

    #[test]
    fn lines() {
        let data = Envelope::data(Value::dict([(
            "a",
            Value::List(vec![
                Value::from(1),
                Value::Bytes(b"x".to_vec()),
                Value::None,
            ]),
        )]))
        .to_pickle(Protocol::default());
        check(
            "ECCI/b/app/app/s/r",
            &data,
            false,
            "s → r [data] {'a': [1, b'x', None]}",
        );
        check(
            "ECCI/b/app/app/s/r",
            &data,
            true,
            r#"{"app":"app","broker":"b","contents":"{'a': [1, b'x', None]}","kind":"app","mountpoint":null,"receiver":"r","sender":"s","topic":"ECCI/b/app/app/s/r","type":"data"}"#,
        );
        let offer = Envelope::new(
            ecci_proto::MessageType::File,
            Value::dict([
                ("cmd", Value::from("resTransfer")),
                ("file_name", Value::from("f.bin")),
                (
                    "getURL",
                    Value::from("http://127.0.0.1:9/app/f.bin?X-Amz-Signature=s3cr3t"),
                ),
            ]),
        )
        .to_pickle(Protocol::default());
        let wide = Style {
            max_len: 200,
            ..text()
        };
        assert_eq!(
            line("ECCI/b/app/plugin/fileManager/r", &offer, &wide),
            "fileManager → r [file] {'cmd': 'resTransfer', 'file_name': 'f.bin', 'getURL': 'http://127.0.0.1:9/app/f.bin?<redacted>'}",
        );
        // A numpy frame shows as its type and shape, never its bytes.
        let frame = ecci_proto::pickle::NdArray::new(
            ecci_proto::pickle::DType::new(
                ecci_proto::pickle::Scalar::U8,
                ecci_proto::pickle::ByteOrder::Little,
            ),
            vec![480, 640, 3],
            ecci_proto::pickle::Order::C,
            vec![0u8; 480 * 640 * 3],
        )
        .expect("a frame");
        let frame = Envelope::data(Value::dict([
            ("frame", Value::NdArray(Box::new(frame))),
            ("ts", Value::Float(1.5)),
        ]))
        .to_pickle(Protocol::V5);
        check(
            "ECCI/b/app/app/cam/r",
            &frame,
            false,
            "cam → r [data] {'frame': ndarray(uint8, 480×640×3), 'ts': 1.5}",
        );
        let cmd = Envelope::cmd("start").to_pickle(Protocol::default());
        check(
            "mnt/ECCI/b/app/app/ctrl/w1",
            &cmd,
            false,
            "ctrl → w1 [cmd] {'cmd': 'start'}",
        );
        check(
            "ECCI/b/app/app/s/r",
            b"hello",
            false,
            "s → r undecodable: payload is not a valid data-only pickle: BINGET at byte 0 reads unset memo index 101",
        );
        check(
            "toEdgeAI/b/log",
            br#"{"app_id": "a", "container_name": "w", "agent_id": null, "log_info": {"time": "2026-11-24 02:26:10,087", "name": "w::io", "level": "INFO", "message": "two\nlines \u001b[2J"}}"#,
            false,
            r"2026-11-24 02:26:10,087 INFO w w::io: two\nlines \u{1b}[2J",
        );
        check(
            "toEdgeAI/b/log",
            b"{}",
            false,
            "toEdgeAI/b/log undecodable: not a log record: missing field `app_id` at line 1 column 2",
        );
        check(
            "toEdgeAI/b/con_cntr_ready",
            br#"{"ready_type": "app", "app_id": "a"}"#,
            false,
            r#"toEdgeAI/b/con_cntr_ready {"ready_type": "app", "app_id": "a"}"#,
        );
        check(
            "toEdgeAI/b/send_data",
            b"\xff",
            true,
            r#"{"error":"undecodable: not JSON: expected value at line 1 column 1","topic":"toEdgeAI/b/send_data"}"#,
        );
        check("other/t", b"\x00\x01", false, r"other/t b'\x00\x01'");
        check("other/t", b"[1]", true, r#"{"json":[1],"topic":"other/t"}"#);
    }

    #[test]
    fn bounded() {
        let big = Envelope::data(Value::from("x".repeat(10_000))).to_pickle(Protocol::default());
        let l = line("ECCI/b/app/app/s/r", &big, &text());
        assert!(l.chars().count() < 100, "{l}");
        assert!(l.ends_with('…'));
    }
}
