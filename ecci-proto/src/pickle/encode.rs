//! The pickle encoder: writes protocol 2, 3 or 4 without a memo, so that any
//! Python 3 `pickle.loads` rebuilds the value.
//!
//! The output follows what CPython writes for the same value, minus `FRAME`
//! and the memo: `bytes` in protocol 2 is `_codecs.encode(str, 'latin1')`,
//! `bytearray` and (below protocol 4) `set`/`frozenset` are a global called
//! through `REDUCE`, and lists, dicts and sets are filled in batches of 1000.

use super::op;
use super::{BigInt, Value};

/// The pickle protocol to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Protocol 2: readable by Python 2.3+ and every Python 3.
    V2,
    /// Protocol 3: Python 3.0+.
    V3,
    /// Protocol 4: Python 3.4+, the default of Python 3.8+.
    #[default]
    V4,
}

/// Items per `APPENDS`/`SETITEMS`/`ADDITEMS`, as CPython's `_BATCHSIZE`.
const BATCH: usize = 1000;

/// Encodes `value` as a pickle of the given protocol.
///
/// The result has no memo, so shared values are written once per reference.
/// Encoding recurses once per level of nesting: it is meant for values a
/// program builds (a [`Value`] from [`decode`](super::decode) is at most
/// [`DecodeLimits::max_depth`](super::DecodeLimits::max_depth) deep), not for
/// arbitrarily deep ones. Protocols 2 and 3 have no opcode for `str` or `bytes`
/// of 4 GiB or more; such values are written with the protocol 4 opcodes, which
/// every Python 3.4+ reads whatever the stream's declared protocol.
///
/// Encoding never fails, but Python loads the result only if `value` passes
/// [`Value::check_encodable`]: a dict key or set item that is a list, dict,
/// set or bytearray makes Python's `pickle.loads` raise `TypeError` (which
/// kills a Python SDK's network thread). Every value [`decode`](super::decode)
/// returns passes, and [`to_value`](super::to_value) refuses unhashable keys;
/// check a value built by hand before sending it.
///
/// ```
/// use ecci_proto::pickle::{DecodeLimits, Protocol, Value, decode, encode};
/// let v = Value::dict([("type", Value::from("data")), ("contents", Value::Bytes(b"hi".to_vec()))]);
/// for p in [Protocol::V2, Protocol::V3, Protocol::V4] {
///     assert_eq!(decode(&encode(&v, p), &DecodeLimits::default()), Ok(v.clone()));
/// }
/// assert_eq!(encode(&Value::None, Protocol::V2), b"\x80\x02N.");
/// ```
pub fn encode(value: &Value, protocol: Protocol) -> Vec<u8> {
    let mut out = Vec::new();
    let version = match protocol {
        Protocol::V2 => 2,
        Protocol::V3 => 3,
        Protocol::V4 => 4,
    };
    out.extend([op::PROTO, version]);
    Encoder { out, protocol }.value(value)
}

struct Encoder {
    out: Vec<u8>,
    protocol: Protocol,
}

impl Encoder {
    fn value(mut self, value: &Value) -> Vec<u8> {
        self.write(value);
        self.out.push(op::STOP);
        self.out
    }

    fn write(&mut self, value: &Value) {
        match value {
            Value::None => self.out.push(op::NONE),
            Value::Bool(true) => self.out.push(op::NEWTRUE),
            Value::Bool(false) => self.out.push(op::NEWFALSE),
            Value::Int(i) => self.int(*i),
            Value::BigInt(big) => self.big_int(big),
            Value::Float(f) => {
                self.out.push(op::BINFLOAT);
                self.out.extend(f.to_be_bytes());
            }
            Value::Str(s) => self.str(s),
            Value::Bytes(b) => self.bytes(b),
            Value::ByteArray(b) => {
                self.global("bytearray");
                if b.is_empty() {
                    self.out.push(op::EMPTY_TUPLE);
                } else {
                    self.bytes(b);
                    self.out.push(op::TUPLE1);
                }
                self.out.push(op::REDUCE);
            }
            Value::Tuple(items) => self.tuple(items),
            Value::List(items) => {
                self.out.push(op::EMPTY_LIST);
                self.list_items(items);
            }
            Value::Dict(pairs) => {
                self.out.push(op::EMPTY_DICT);
                for batch in pairs.chunks(BATCH) {
                    if let [(k, v)] = batch {
                        self.write(k);
                        self.write(v);
                        self.out.push(op::SETITEM);
                    } else {
                        self.out.push(op::MARK);
                        for (k, v) in batch {
                            self.write(k);
                            self.write(v);
                        }
                        self.out.push(op::SETITEMS);
                    }
                }
            }
            Value::Set(items) => match self.protocol {
                Protocol::V4 => {
                    self.out.push(op::EMPTY_SET);
                    for batch in items.chunks(BATCH) {
                        self.out.push(op::MARK);
                        batch.iter().for_each(|item| self.write(item));
                        self.out.push(op::ADDITEMS);
                    }
                }
                Protocol::V2 | Protocol::V3 => self.set_by_reduce("set", items),
            },
            Value::FrozenSet(items) => match self.protocol {
                Protocol::V4 => {
                    self.out.push(op::MARK);
                    items.iter().for_each(|item| self.write(item));
                    self.out.push(op::FROZENSET);
                }
                Protocol::V2 | Protocol::V3 => self.set_by_reduce("frozenset", items),
            },
        }
    }

    fn int(&mut self, i: i64) {
        if let Ok(b) = u8::try_from(i) {
            self.out.extend([op::BININT1, b]);
        } else if let Ok(w) = u16::try_from(i) {
            self.out.push(op::BININT2);
            self.out.extend(w.to_le_bytes());
        } else if let Ok(d) = i32::try_from(i) {
            self.out.push(op::BININT);
            self.out.extend(d.to_le_bytes());
        } else {
            self.big_int(&BigInt::from_i128(i.into()));
        }
    }

    fn big_int(&mut self, big: &BigInt) {
        let bytes = big.to_le_bytes();
        // CPython writes zero as no bytes at all.
        let bytes = if bytes == [0] { &[][..] } else { bytes };
        if let Ok(len) = u8::try_from(bytes.len()) {
            self.out.extend([op::LONG1, len]);
        } else {
            // A BigInt of 2 GiB cannot be built on any machine this runs on.
            let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
            self.out.push(op::LONG4);
            self.out.extend(len.to_le_bytes());
        }
        self.out.extend(bytes);
    }

    fn str(&mut self, s: &str) {
        let len = s.len();
        match (u8::try_from(len), u32::try_from(len)) {
            (Ok(short), _) if self.protocol == Protocol::V4 => {
                self.out.extend([op::SHORT_BINUNICODE, short]);
            }
            (_, Ok(len)) => {
                self.out.push(op::BINUNICODE);
                self.out.extend(len.to_le_bytes());
            }
            _ => {
                self.out.push(op::BINUNICODE8);
                self.out.extend((len as u64).to_le_bytes());
            }
        }
        self.out.extend(s.as_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        if self.protocol == Protocol::V2 {
            // Protocol 2 has no bytes opcode: CPython writes _codecs.encode(latin1 text, 'latin1').
            if b.is_empty() {
                self.global("bytes");
                self.out.extend([op::EMPTY_TUPLE, op::REDUCE]);
            } else {
                self.out.extend(b"c_codecs\nencode\n");
                let text: String = b.iter().copied().map(char::from).collect();
                self.str(&text);
                self.str("latin1");
                self.out.extend([op::TUPLE2, op::REDUCE]);
            }
            return;
        }
        let len = b.len();
        match (u8::try_from(len), u32::try_from(len)) {
            (Ok(short), _) => self.out.extend([op::SHORT_BINBYTES, short]),
            (_, Ok(len)) => {
                self.out.push(op::BINBYTES);
                self.out.extend(len.to_le_bytes());
            }
            _ => {
                self.out.push(op::BINBYTES8);
                self.out.extend((len as u64).to_le_bytes());
            }
        }
        self.out.extend(b);
    }

    fn tuple(&mut self, items: &[Value]) {
        match items {
            [] => self.out.push(op::EMPTY_TUPLE),
            [_] | [_, _] | [_, _, _] => {
                items.iter().for_each(|item| self.write(item));
                self.out.push(op::TUPLE1 + (items.len() - 1) as u8);
            }
            _ => {
                self.out.push(op::MARK);
                items.iter().for_each(|item| self.write(item));
                self.out.push(op::TUPLE);
            }
        }
    }

    fn list_items(&mut self, items: &[Value]) {
        for batch in items.chunks(BATCH) {
            if let [item] = batch {
                self.write(item);
                self.out.push(op::APPEND);
            } else {
                self.out.push(op::MARK);
                batch.iter().for_each(|item| self.write(item));
                self.out.push(op::APPENDS);
            }
        }
    }

    /// `builtins.set(list)` / `builtins.frozenset(list)`, as CPython writes below protocol 4.
    fn set_by_reduce(&mut self, name: &str, items: &[Value]) {
        self.global(name);
        self.out.push(op::EMPTY_LIST);
        self.list_items(items);
        self.out.extend([op::TUPLE1, op::REDUCE]);
    }

    /// A `GLOBAL` of a builtin, named as the protocol's Python would name it.
    fn global(&mut self, name: &str) {
        let module: &[u8] = match self.protocol {
            Protocol::V2 => b"__builtin__",
            Protocol::V3 | Protocol::V4 => b"builtins",
        };
        self.out.push(op::GLOBAL);
        self.out.extend(module);
        self.out.push(b'\n');
        self.out.extend(name.as_bytes());
        self.out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(value: Value, protocol: Protocol, expected: &[u8]) {
        assert_eq!(encode(&value, protocol), expected, "{value:?}");
    }

    #[test]
    fn matches_cpython_bytes() {
        // Each expected stream is CPython 3.11's pickle.dumps(v, p) with FRAME and memo removed.
        check(Value::from(1), Protocol::V2, b"\x80\x02K\x01.");
        check(Value::from(-1), Protocol::V2, b"\x80\x02J\xff\xff\xff\xff.");
        check(Value::from(300), Protocol::V3, b"\x80\x03M\x2c\x01.");
        check(
            Value::Int(1 << 40),
            Protocol::V4,
            b"\x80\x04\x8a\x06\x00\x00\x00\x00\x00\x01.",
        );
        check(
            Value::BigInt(BigInt::from_i128(0)),
            Protocol::V4,
            b"\x80\x04\x8a\x00.",
        );
        check(
            Value::Bytes(b"ab".to_vec()),
            Protocol::V3,
            b"\x80\x03C\x02ab.",
        );
        check(
            Value::Bytes(b"\xff".to_vec()),
            Protocol::V2,
            b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1\x86R.",
        );
        check(
            Value::Bytes(Vec::new()),
            Protocol::V2,
            b"\x80\x02c__builtin__\nbytes\n)R.",
        );
        check(
            Value::ByteArray(b"ab".to_vec()),
            Protocol::V3,
            b"\x80\x03cbuiltins\nbytearray\nC\x02ab\x85R.",
        );
        check(Value::from("ab"), Protocol::V4, b"\x80\x04\x8c\x02ab.");
        check(
            Value::from("ab"),
            Protocol::V3,
            b"\x80\x03X\x02\x00\x00\x00ab.",
        );
        check(
            Value::Tuple(vec![Value::None; 4]),
            Protocol::V2,
            b"\x80\x02(NNNNt.",
        );
        check(
            Value::List(vec![Value::None]),
            Protocol::V2,
            b"\x80\x02]Na.",
        );
        check(
            Value::Set(vec![Value::from(1)]),
            Protocol::V4,
            b"\x80\x04\x8f(K\x01\x90.",
        );
        check(
            Value::FrozenSet(vec![Value::from(1)]),
            Protocol::V3,
            b"\x80\x03cbuiltins\nfrozenset\n]K\x01a\x85R.",
        );
        check(
            Value::dict([("a", Value::None), ("b", Value::None)]),
            Protocol::V4,
            b"\x80\x04}(\x8c\x01aN\x8c\x01bNu.",
        );
    }
}
