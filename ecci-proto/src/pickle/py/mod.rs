//! Typed Python values beside the opcode machine: what a class-building opcode
//! becomes once decoded.
//!
//! The decoder builds every object as inert data ([`Object`]: class name,
//! arguments, state, items) and never calls or looks anything up. Then the
//! classes every edge-AI app sends are mapped to typed values here, each in a
//! module of its own: `numpy` (arrays and scalars), `datetime`, `Decimal`,
//! `complex`, `range` and the `collections` types below. A value that does not
//! have the exact shape CPython writes for its class stays an inert [`Object`]:
//! nothing is lost, nothing is guessed.

pub(crate) mod datetime;
pub(crate) mod numpy;
pub(crate) mod object;

use std::fmt;

pub use datetime::{Date, DateTime, Time, TimeDelta, TimeZone};
pub use numpy::{ByteOrder, DType, Element, NdArray, NdArrayError, NumpyScalar, Order, Scalar};
pub use object::{Construct, Global, Object};

use super::Value;

/// A `decimal.Decimal`, kept exactly as its string (`"1.10"`, `"-0E-7"`, `"NaN"`).
///
/// ```
/// use ecci_proto::pickle::Decimal;
/// let d = Decimal::new("1.10").unwrap();
/// assert_eq!(d.as_str(), "1.10");
/// assert_eq!(d.to_string(), "Decimal('1.10')");
/// assert!(Decimal::new("1,1").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal(String);

impl Decimal {
    /// A decimal from Python's string form, if it is one.
    pub fn new(s: impl Into<String>) -> Option<Self> {
        let s = s.into();
        let body = s.strip_prefix(['+', '-']).unwrap_or(&s);
        let lower = body.to_ascii_lowercase();
        // NaN and sNaN may carry diagnostic digits.
        let payload = lower
            .strip_prefix("snan")
            .or_else(|| lower.strip_prefix("nan"));
        let special = matches!(lower.as_str(), "inf" | "infinity")
            || payload.is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
        let (mantissa, exponent) = match lower.split_once('e') {
            Some((m, e)) => (m, Some(e)),
            None => (lower.as_str(), None),
        };
        let digits = mantissa.replacen('.', "", 1);
        let number = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && exponent.is_none_or(|e| {
                let e = e.strip_prefix(['+', '-']).unwrap_or(e);
                !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
            });
        (special || number).then_some(Self(s))
    }

    /// The exact string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Python's `repr`: `Decimal('1.10')`.
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal('{}')", self.0)
    }
}

/// Which dict subclass a [`Mapping`] is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MappingKind {
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `collections.defaultdict`, with its `default_factory` by name (`None` for none).
    DefaultDict {
        /// The factory, e.g. `builtins.list`; never called.
        factory: Option<Global>,
    },
    /// `collections.Counter`.
    Counter,
}

impl MappingKind {
    /// The Python class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            MappingKind::OrderedDict => "collections.OrderedDict",
            MappingKind::DefaultDict { .. } => "collections.defaultdict",
            MappingKind::Counter => "collections.Counter",
        }
    }
}

/// An `OrderedDict`, `defaultdict` or `Counter`: pairs in wire order and the class.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The class.
    pub kind: MappingKind,
    /// The pairs, as a [`Value::Dict`] holds them.
    pub pairs: Vec<(Value, Value)>,
}

/// A `collections.deque`.
#[derive(Debug, Clone, PartialEq)]
pub struct Deque {
    /// The items, left to right.
    pub items: Vec<Value>,
    /// The `maxlen`, if bounded.
    pub maxlen: Option<usize>,
}

/// Whether [`ObjectPolicy::WellKnown`](super::ObjectPolicy::WellKnown) accepts
/// the global `module.name`: a class this module maps to a typed value, a part
/// numpy's pickles need, or a builtin type used as a value (a `defaultdict`'s
/// factory).
pub(crate) fn is_well_known_global(module: &str, name: &str) -> bool {
    match module {
        "numpy" => matches!(name, "ndarray" | "dtype"),
        "numpy.core.multiarray" | "numpy._core.multiarray" => {
            matches!(name, "_reconstruct" | "scalar")
        }
        "numpy.core.numeric" | "numpy._core.numeric" => name == "_frombuffer",
        "datetime" => matches!(
            name,
            "datetime" | "date" | "time" | "timedelta" | "timezone"
        ),
        "decimal" => name == "Decimal",
        "collections" => matches!(name, "OrderedDict" | "defaultdict" | "Counter" | "deque"),
        "builtins" | "__builtin__" => matches!(
            name,
            "complex"
                | "range"
                | "xrange"
                | "list"
                | "dict"
                | "set"
                | "int"
                | "float"
                | "str"
                | "tuple"
        ),
        _ => false,
    }
}

/// The typed value for an inert object of a well-known class, or the object
/// itself. Numpy arrays and scalars are recognized earlier, on the decoder's
/// graph, so that their data stays a view on the input.
pub(crate) fn typed(obj: Object) -> Value {
    if let Some(shape) = collection(&obj) {
        return build_collection(obj, shape);
    }
    match well_known(&obj) {
        Some(v) => v,
        None => reconstructor(obj),
    }
}

/// Protocol 0/1 instances: `copyreg._reconstructor(cls, object, None)` then
/// `BUILD`, read as the instance of `cls` it builds.
fn reconstructor(obj: Object) -> Value {
    if obj.class.is("copyreg", "_reconstructor")
        && obj.items.is_empty()
        && obj.dict_items.is_empty()
        && obj.kwargs.is_empty()
    {
        if let [Value::Global(cls), Value::Global(base), Value::None] = obj.args.as_slice() {
            if base.is("builtins", "object") {
                return Value::Object(Box::new(Object {
                    class: (**cls).clone(),
                    construct: Construct::New,
                    args: Vec::new(),
                    kwargs: Vec::new(),
                    state: obj.state,
                    items: Vec::new(),
                    dict_items: Vec::new(),
                }));
            }
        }
    }
    Value::Object(Box::new(obj))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        Value::BigInt(b) => b.to_f64(),
        _ => None,
    }
}

fn well_known(obj: &Object) -> Option<Value> {
    if obj.class.module == "datetime" {
        return datetime::from_object(obj);
    }
    let plain = obj.state.is_none() && obj.kwargs.is_empty();
    if !plain {
        return None;
    }
    let no_items = obj.items.is_empty() && obj.dict_items.is_empty();
    let c = &obj.class;
    let args = obj.args.as_slice();
    if c.is("builtins", "complex") && no_items {
        return match args {
            [re] => Some(Value::Complex {
                re: number(re)?,
                im: 0.0,
            }),
            [re, im] => Some(Value::Complex {
                re: number(re)?,
                im: number(im)?,
            }),
            _ => None,
        };
    }
    // Protocol 2 names range by its Python 2 name.
    if (c.is("builtins", "range") || c.is("builtins", "xrange")) && no_items {
        let ints: Option<Vec<i64>> = args.iter().map(Value::as_i64).collect();
        return match ints?.as_slice() {
            &[start, stop, step] if step != 0 => Some(Value::Range { start, stop, step }),
            _ => None,
        };
    }
    if c.is("decimal", "Decimal") && no_items {
        return match args {
            [Value::Str(s)] => Decimal::new(s.clone()).map(Value::Decimal),
            _ => None,
        };
    }
    None
}

/// The shape of a `collections` object CPython writes, found by reference so
/// that [`build_collection`] can move the items instead of copying them.
enum Collection {
    Mapping(MappingKind),
    /// `Counter(dict)`.
    CounterArg,
    /// `deque([items][, maxlen])`, plus appended items.
    Deque {
        maxlen: Option<usize>,
        from_arg: bool,
    },
}

fn collection(obj: &Object) -> Option<Collection> {
    let c = &obj.class;
    if c.module != "collections" || obj.state.is_some() || !obj.kwargs.is_empty() {
        return None;
    }
    let no_items = obj.items.is_empty();
    let no_pairs = obj.dict_items.is_empty();
    Some(match (c.name.as_str(), obj.args.as_slice()) {
        ("OrderedDict", []) if no_items => Collection::Mapping(MappingKind::OrderedDict),
        ("defaultdict", [factory]) if no_items => {
            let factory = match factory {
                Value::None => None,
                Value::Global(g) => Some((**g).clone()),
                _ => return None,
            };
            Collection::Mapping(MappingKind::DefaultDict { factory })
        }
        ("defaultdict", []) if no_items => {
            Collection::Mapping(MappingKind::DefaultDict { factory: None })
        }
        ("Counter", [Value::Dict(_)]) if no_items && no_pairs => Collection::CounterArg,
        ("Counter", []) if no_items => Collection::Mapping(MappingKind::Counter),
        ("deque", []) if no_pairs => Collection::Deque {
            maxlen: None,
            from_arg: false,
        },
        ("deque", [first, rest @ ..]) if no_pairs && rest.len() <= 1 => {
            if !matches!(first, Value::List(_) | Value::Tuple(_)) {
                return None;
            }
            let maxlen = match rest {
                [] | [Value::None] => None,
                [Value::Int(n)] => Some(usize::try_from(*n).ok()?),
                _ => return None,
            };
            Collection::Deque {
                maxlen,
                from_arg: true,
            }
        }
        _ => return None,
    })
}

/// The typed collection, its items moved out of `obj`.
fn build_collection(obj: Object, shape: Collection) -> Value {
    let Object {
        mut args,
        items,
        dict_items,
        ..
    } = obj;
    match shape {
        Collection::Mapping(kind) => Value::Mapping(Box::new(Mapping {
            kind,
            pairs: dict_items,
        })),
        Collection::CounterArg => {
            let pairs = match args.pop() {
                Some(Value::Dict(pairs)) => pairs,
                _ => Vec::new(),
            };
            Value::Mapping(Box::new(Mapping {
                kind: MappingKind::Counter,
                pairs,
            }))
        }
        Collection::Deque { maxlen, from_arg } => {
            let mut all = match (from_arg, args.into_iter().next()) {
                (true, Some(Value::List(first) | Value::Tuple(first))) => first,
                _ => Vec::new(),
            };
            all.extend(items);
            Value::Deque(Box::new(Deque { items: all, maxlen }))
        }
    }
}

/// Whether `bytes` is generalized UTF-8 where lone surrogates (U+D800–U+DFFF)
/// may appear, each encoded on its own as Python's `surrogatepass` writes them.
pub(crate) fn is_wtf8(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(_) => return true,
            Err(e) => {
                let tail = &rest[e.valid_up_to()..];
                match tail {
                    [0xed, 0xa0..=0xbf, 0x80..=0xbf, ..] => rest = &tail[3..],
                    _ => return false,
                }
            }
        }
    }
    true
}

/// Generalized UTF-8 to a string, each surrogate replaced by U+FFFD.
pub(crate) fn wtf8_lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, tail) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push('\u{fffd}');
                let skip = match tail {
                    [0xed, 0xa0..=0xbf, 0x80..=0xbf, ..] => 3,
                    _ => e.error_len().unwrap_or(tail.len()).max(1),
                };
                rest = tail.get(skip..).unwrap_or_default();
            }
        }
    }
}

/// The code points of generalized UTF-8, surrogates included.
pub(crate) fn wtf8_code_points(bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.extend(s.chars().map(u32::from));
                return out;
            }
            Err(e) => {
                let (valid, tail) = rest.split_at(e.valid_up_to());
                out.extend(
                    std::str::from_utf8(valid)
                        .unwrap_or_default()
                        .chars()
                        .map(u32::from),
                );
                match tail {
                    [0xed, b1 @ 0xa0..=0xbf, b2 @ 0x80..=0xbf, ..] => {
                        out.push(0xd000 | (u32::from(b1 & 0x3f) << 6) | u32::from(b2 & 0x3f));
                        rest = &tail[3..];
                    }
                    _ => {
                        out.push(0xfffd);
                        rest = tail.get(1..).unwrap_or_default();
                    }
                }
            }
        }
    }
}

/// Appends the generalized UTF-8 of code point `c` (a surrogate too).
pub(crate) fn push_wtf8(out: &mut Vec<u8>, c: u32) {
    match char::from_u32(c) {
        Some(ch) => out.extend(ch.encode_utf8(&mut [0; 4]).as_bytes()),
        None => out.extend([
            0xe0 | (c >> 12) as u8,
            0x80 | ((c >> 6) & 0x3f) as u8,
            0x80 | (c & 0x3f) as u8,
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wtf8() {
        let mut b = b"a".to_vec();
        push_wtf8(&mut b, 0xd800);
        push_wtf8(&mut b, 0xe9);
        assert_eq!(b, b"a\xed\xa0\x80\xc3\xa9");
        assert!(is_wtf8(&b));
        assert_eq!(wtf8_lossy(&b), "a\u{fffd}é");
        assert_eq!(wtf8_code_points(&b), [0x61, 0xd800, 0xe9]);
        assert!(!is_wtf8(b"\xff"));
        assert!(!is_wtf8(b"\xed\xa0"));
    }

    #[test]
    fn decimals() {
        for ok in [
            "1",
            "-1.10",
            "1E+3",
            "0e-7",
            "NaN",
            "-Infinity",
            "sNaN12",
            ".5",
            "5.",
        ] {
            assert!(Decimal::new(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "1,0", "e5", "1e", "--1", "nan x", "0x10", "sssnan", "snan-1",
        ] {
            assert!(Decimal::new(bad).is_none(), "{bad}");
        }
    }
}
