//! The dynamic value carried in an envelope's `contents`: any Python value, as inert data.

use std::fmt;

use super::py::{
    Date, DateTime, Decimal, Deque, Global, Mapping, NdArray, NumpyScalar, Object, Time, TimeDelta,
    TimeZone,
};

/// A Python value as ECCI peers exchange it: plain data, the well-known types
/// edge-AI apps send (numpy arrays and scalars, `datetime`, `Decimal`, `complex`,
/// the `collections` types, `range`), and inert [`Object`]s for every other class.
///
/// Nothing in a `Value` was built by running code: an object is its class name,
/// arguments and state. `Display` writes Python's `repr()` (an array shows as
/// `ndarray(uint8, 480×640×3)`, never its bytes).
///
/// Dicts keep their pairs in wire order, as Python dicts keep insertion order. A
/// pickle never repeats a key, but a hostile one may: the pairs are kept as they
/// came and [`Value::get`] returns the last match, which is what Python's
/// `dict` would hold.
///
/// ```
/// use ecci_proto::pickle::Value;
/// let v = Value::dict([("type", Value::from("data")), ("contents", Value::from(3))]);
/// assert_eq!(v.get("type").and_then(Value::as_str), Some("data"));
/// assert_eq!(v.get("contents").and_then(Value::as_i64), Some(3));
/// ```
#[derive(Debug, Default)]
#[non_exhaustive]
pub enum Value {
    /// `None`.
    #[default]
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` that fits in an `i64`.
    Int(i64),
    /// An `int` that does not fit in an `i64`.
    BigInt(BigInt),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` object.
    Bytes(Vec<u8>),
    /// A `bytearray`.
    ByteArray(Vec<u8>),
    /// A `list`.
    List(Vec<Value>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `set`, in wire order.
    Set(Vec<Value>),
    /// A `frozenset`, in wire order.
    FrozenSet(Vec<Value>),
    /// A `dict`, as `(key, value)` pairs in wire order.
    Dict(Vec<(Value, Value)>),
    /// A `str` holding lone surrogates (`'\\ud800'`), which a Rust `String` cannot:
    /// the UTF-8 bytes with each surrogate encoded on its own, exactly as Python
    /// writes them with `surrogatepass` (WTF-8). Written back unchanged; read as a
    /// Rust string with each lone surrogate replaced by U+FFFD
    /// ([`Value::to_str_lossy`]).
    SurrogateStr(Vec<u8>),
    /// A `complex`.
    Complex {
        /// The real part.
        re: f64,
        /// The imaginary part.
        im: f64,
    },
    /// A `range` (`range(start, stop, step)`).
    Range {
        /// The start.
        start: i64,
        /// The stop (exclusive).
        stop: i64,
        /// The step, never 0.
        step: i64,
    },
    /// A `decimal.Decimal`, exactly, as its string.
    Decimal(Decimal),
    /// A `datetime.datetime`, naive or with a fixed-offset time zone.
    DateTime(Box<DateTime>),
    /// A `datetime.date`.
    Date(Date),
    /// A `datetime.time`.
    Time(Box<Time>),
    /// A `datetime.timedelta`.
    TimeDelta(TimeDelta),
    /// A fixed-offset `datetime.timezone`.
    TimeZone(Box<TimeZone>),
    /// A numpy `ndarray` of a fixed-size numeric dtype.
    NdArray(Box<NdArray>),
    /// A numpy scalar (`np.float32(1.5)`).
    NumpyScalar(Box<NumpyScalar>),
    /// An `OrderedDict`, `defaultdict` or `Counter`: a dict that remembers its class.
    Mapping(Box<Mapping>),
    /// A `collections.deque`: a list that remembers its class and `maxlen`.
    Deque(Box<Deque>),
    /// A class or function used as a value (a `defaultdict`'s factory, a class
    /// passed as an argument), by name; never looked up.
    Global(Box<Global>),
    /// An instance of any other class, inert: see [`Object`].
    Object(Box<Object>),
}

impl Value {
    /// Builds a dict with string keys.
    pub fn dict<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
        )
    }

    /// The value under the string key `key`, if this is a dict that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(pairs) => pairs
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an `int` that fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The bytes, if this is `bytes` or a `bytearray`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) | Value::ByteArray(b) => Some(b),
            _ => None,
        }
    }

    /// The pairs, if this is a dict.
    pub fn as_dict(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// The items, if this is a list or a tuple.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) | Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The string, with each lone surrogate replaced by U+FFFD, if this is a `str`.
    ///
    /// ```
    /// use ecci_proto::pickle::Value;
    /// assert_eq!(Value::SurrogateStr(b"a\xed\xa0\x80".to_vec()).to_str_lossy().as_deref(), Some("a\u{fffd}"));
    /// ```
    pub fn to_str_lossy(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(std::borrow::Cow::Borrowed(s)),
            Value::SurrogateStr(b) => Some(std::borrow::Cow::Owned(super::py::wtf8_lossy(b))),
            _ => None,
        }
    }

    /// The array, if this is a numpy `ndarray`.
    pub fn as_ndarray(&self) -> Option<&NdArray> {
        match self {
            Value::NdArray(a) => Some(a),
            _ => None,
        }
    }

    /// The object, if this is an inert [`Object`].
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// About how many bytes of memory this value holds: every value, the
    /// capacity of every vector and string, boxed parts, and array data that is
    /// not a view on `payload` (pass the decoded payload, or `&[]` to count all
    /// array data). Walked without recursion.
    ///
    /// ```
    /// use ecci_proto::pickle::Value;
    /// let v = Value::List(vec![Value::Bytes(vec![0; 1000])]);
    /// assert!(v.heap_size(&[]) >= 1000);
    /// ```
    pub fn heap_size(&self, payload: &[u8]) -> usize {
        use std::mem::size_of;
        let range = payload.as_ptr_range();
        let mut total = size_of::<Value>();
        let mut stack = vec![self];
        while let Some(v) = stack.pop() {
            total += match v {
                Value::Str(s) => s.capacity(),
                Value::Bytes(b) | Value::ByteArray(b) | Value::SurrogateStr(b) => b.capacity(),
                Value::BigInt(b) => b.to_le_bytes().len(),
                Value::List(items)
                | Value::Tuple(items)
                | Value::Set(items)
                | Value::FrozenSet(items) => items.capacity() * size_of::<Value>(),
                Value::Dict(pairs) => pairs.capacity() * 2 * size_of::<Value>(),
                Value::Decimal(d) => d.as_str().len(),
                Value::DateTime(_) => size_of::<DateTime>(),
                Value::Time(_) => size_of::<Time>(),
                Value::TimeZone(tz) => {
                    size_of::<TimeZone>() + tz.name.as_ref().map_or(0, String::len)
                }
                Value::NdArray(a) => {
                    let view = !a.data().is_empty() && range.contains(&a.data().as_ptr());
                    size_of::<NdArray>()
                        + std::mem::size_of_val(a.shape())
                        + if view { 0 } else { a.data().len() }
                }
                Value::NumpyScalar(s) => size_of::<NumpyScalar>() + s.data().len(),
                Value::Mapping(m) => {
                    size_of::<Mapping>() + m.pairs.capacity() * 2 * size_of::<Value>()
                }
                Value::Deque(d) => size_of::<Deque>() + d.items.capacity() * size_of::<Value>(),
                Value::Global(g) => size_of::<Global>() + g.module.len() + g.name.len(),
                Value::Object(o) => {
                    size_of::<Object>()
                        + o.class.module.len()
                        + o.class.name.len()
                        + (o.args.capacity() + o.items.capacity()) * size_of::<Value>()
                        + (o.kwargs.capacity() + o.dict_items.capacity()) * 2 * size_of::<Value>()
                        + o.state.as_ref().map_or(0, |_| size_of::<Value>())
                }
                _ => 0,
            };
            let mut i = 0;
            while let Some((child, _)) = v.child(i) {
                stack.push(child);
                i += 1;
            }
        }
        total
    }

    /// The Python type name of this value (`"dict"`, `"str"`, …), for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::SurrogateStr(_) => "str",
            Value::Complex { .. } => "complex",
            Value::Range { .. } => "range",
            Value::Decimal(_) => "decimal.Decimal",
            Value::DateTime(_) => "datetime.datetime",
            Value::Date(_) => "datetime.date",
            Value::Time(_) => "datetime.time",
            Value::TimeDelta(_) => "datetime.timedelta",
            Value::TimeZone(_) => "datetime.timezone",
            Value::NdArray(_) => "numpy.ndarray",
            Value::NumpyScalar(_) => "numpy scalar",
            Value::Mapping(m) => m.kind.class_name(),
            Value::Deque(_) => "collections.deque",
            Value::Global(_) => "global",
            Value::Object(_) => "object",
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::ByteArray(_) => "bytearray",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Dict(_) => "dict",
        }
    }

    /// Whether Python can hash this value, so that it may be a dict key or a
    /// set item: everything but `list`, `dict`, `set` and `bytearray`, and
    /// tuples and frozensets holding one of those.
    ///
    /// ```
    /// use ecci_proto::pickle::Value;
    /// assert!(Value::Tuple(vec![Value::from(1), Value::from("a")]).is_hashable());
    /// assert!(!Value::Tuple(vec![Value::List(vec![])]).is_hashable());
    /// ```
    pub fn is_hashable(&self) -> bool {
        self.unhashable_part().is_none()
    }

    /// The Python type name of the first unhashable part of this value, if any.
    pub(crate) fn unhashable_part(&self) -> Option<&'static str> {
        // An explicit stack: a deeply nested tuple should not cost stack frames. It starts
        // empty (no allocation) since only tuples and frozensets push onto it, and the
        // decoder asks this of every value it builds.
        let mut stack: Vec<&Value> = Vec::new();
        let mut next = Some(self);
        while let Some(v) = next.take().or_else(|| stack.pop()) {
            match v {
                Value::None
                | Value::Bool(_)
                | Value::Int(_)
                | Value::BigInt(_)
                | Value::Float(_)
                | Value::Str(_)
                | Value::Bytes(_)
                | Value::SurrogateStr(_)
                | Value::Complex { .. }
                | Value::Range { .. }
                | Value::Decimal(_)
                | Value::DateTime(_)
                | Value::Date(_)
                | Value::Time(_)
                | Value::TimeDelta(_)
                | Value::TimeZone(_)
                | Value::NumpyScalar(_)
                | Value::Global(_)
                // Instances hash by identity unless their class says otherwise.
                | Value::Object(_) => {}
                // Reversed, to find the first unhashable part in order.
                Value::Tuple(items) | Value::FrozenSet(items) => stack.extend(items.iter().rev()),
                Value::ByteArray(_)
                | Value::List(_)
                | Value::Set(_)
                | Value::Dict(_)
                | Value::NdArray(_)
                | Value::Mapping(_)
                | Value::Deque(_) => {
                    return Some(v.type_name());
                }
            }
        }
        None
    }

    /// Checks that a Python peer can load this value once encoded: every dict
    /// key and set item is hashable (Python's `pickle.loads` raises `TypeError`
    /// otherwise, which kills a Python SDK's network thread), and containers
    /// nest at most [`MAX_ENCODABLE_DEPTH`] deep (what a Rust peer's default
    /// [`DecodeLimits`](super::DecodeLimits) accepts, and what
    /// [`encode`](super::encode()) may recurse through).
    ///
    /// Every value [`decode`](super::decode()) returns passes. Call this on a
    /// value built by hand before [`encode`](super::encode()) publishes it.
    /// The walk uses an explicit stack, so any value may be checked.
    ///
    /// ```
    /// use ecci_proto::pickle::{UnencodableError, Value};
    /// let ok = Value::dict([("a", Value::List(vec![]))]);
    /// assert_eq!(ok.check_encodable(), Ok(()));
    /// let bad = Value::Dict(vec![(Value::List(vec![]), Value::None)]);
    /// assert_eq!(
    ///     bad.check_encodable().unwrap_err().to_string(),
    ///     "unhashable type 'list' in a dict key"
    /// );
    /// ```
    ///
    /// # Errors
    ///
    /// An [`UnencodableError`] naming the first problem found.
    pub fn check_encodable(&self) -> Result<(), UnencodableError> {
        // The walk visits values in the order the decoder builds them, so
        // that both report the same first problem.
        let Some(mut frame) = CheckFrame::enter(self, 0)? else {
            return Ok(());
        };
        let mut parents: Vec<CheckFrame<'_>> = Vec::new();
        loop {
            if let Some(child) = frame.next_child() {
                match CheckFrame::enter(child, parents.len() + 1)? {
                    None => frame.push(child.unhashable_part())?,
                    Some(inner) => parents.push(std::mem::replace(&mut frame, inner)),
                }
                continue;
            }
            let unhashable = frame.finish();
            match parents.pop() {
                Some(parent) => {
                    frame = parent;
                    frame.push(unhashable)?;
                }
                None => return Ok(()),
            }
        }
    }
}

/// A container being checked by [`Value::check_encodable`].
struct CheckFrame<'v> {
    value: &'v Value,
    next: usize,
    /// The type of the first unhashable item, which makes a tuple unhashable.
    unhashable: Option<&'static str>,
}

impl<'v> CheckFrame<'v> {
    /// Starts checking `value` under `depth` open containers; `None` for a leaf.
    fn enter(value: &'v Value, depth: usize) -> Result<Option<Self>, UnencodableError> {
        if !value.is_container() {
            return Ok(None);
        }
        if depth >= MAX_ENCODABLE_DEPTH {
            return Err(UnencodableError::TooDeep {
                max: MAX_ENCODABLE_DEPTH,
            });
        }
        Ok(Some(Self {
            value,
            next: 0,
            unhashable: None,
        }))
    }

    /// The next child, dict keys and values alternating.
    fn next_child(&mut self) -> Option<&'v Value> {
        let value: &'v Value = self.value;
        let child = value.child(self.next).map(|(child, _)| child);
        self.next += 1;
        child
    }

    /// Takes the result for the child just visited.
    fn push(&mut self, unhashable: Option<&'static str>) -> Result<(), UnencodableError> {
        let Some(found) = unhashable else {
            return Ok(());
        };
        let is_key = self
            .value
            .child(self.next - 1)
            .is_some_and(|(_, is_key)| is_key);
        let container = match self.value {
            _ if is_key => "dict key",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            _ => {
                self.unhashable.get_or_insert(found);
                return Ok(());
            }
        };
        Err(UnencodableError::Unhashable { found, container })
    }

    /// The type that makes the finished container unhashable, if any.
    fn finish(self) -> Option<&'static str> {
        match self.value {
            Value::Tuple(_) | Value::FrozenSet(_) => self.unhashable,
            Value::Object(_) => None,
            other => Some(other.type_name()),
        }
    }
}

impl Value {
    /// Whether this value holds other values (and so counts a level of nesting).
    pub(crate) fn is_container(&self) -> bool {
        matches!(
            self,
            Value::List(_)
                | Value::Tuple(_)
                | Value::Set(_)
                | Value::FrozenSet(_)
                | Value::Dict(_)
                | Value::Mapping(_)
                | Value::Deque(_)
                | Value::Object(_)
        )
    }

    /// The `i`-th value this one holds, and whether it is a dict key: items in
    /// order, dict keys and values alternating; for an object its arguments,
    /// keyword arguments, state, items and dict items, in that order.
    pub(crate) fn child(&self, i: usize) -> Option<(&Value, bool)> {
        fn pairs(pairs: &[(Value, Value)], i: usize) -> Option<(&Value, bool)> {
            let (k, v) = pairs.get(i / 2)?;
            Some(if i % 2 == 0 { (k, true) } else { (v, false) })
        }
        match self {
            Value::List(items)
            | Value::Tuple(items)
            | Value::Set(items)
            | Value::FrozenSet(items) => items.get(i).map(|v| (v, false)),
            Value::Deque(d) => d.items.get(i).map(|v| (v, false)),
            Value::Dict(p) => pairs(p, i),
            Value::Mapping(m) => pairs(&m.pairs, i),
            Value::Object(o) => {
                let mut i = i;
                if let Some(v) = o.args.get(i) {
                    return Some((v, false));
                }
                i -= o.args.len();
                if i < o.kwargs.len() * 2 {
                    return pairs(&o.kwargs, i);
                }
                i -= o.kwargs.len() * 2;
                if let Some(state) = &o.state {
                    if i == 0 {
                        return Some((state, false));
                    }
                    i -= 1;
                }
                if let Some(v) = o.items.get(i) {
                    return Some((v, false));
                }
                i -= o.items.len();
                pairs(&o.dict_items, i)
            }
            _ => None,
        }
    }
}

/// Cloning never recurses, so a value as deep as any decoder accepts clones on a
/// small stack.
impl Clone for Value {
    fn clone(&self) -> Self {
        if !self.is_container() {
            return self.clone_leaf();
        }
        // Containers being copied: the source and the copies of its children so far.
        let mut stack: Vec<(&Value, usize, Vec<Value>)> = vec![(self, 0, Vec::new())];
        loop {
            let Some((src, next, items)) = stack.last_mut() else {
                return Value::None;
            };
            match src.child(*next) {
                Some((child, _)) => {
                    *next += 1;
                    if child.is_container() {
                        stack.push((child, 0, Vec::new()));
                    } else {
                        items.push(child.clone_leaf());
                    }
                }
                None => {
                    let Some((src, _, items)) = stack.pop() else {
                        return Value::None;
                    };
                    let copy = src.rebuild(items);
                    match stack.last_mut() {
                        Some((_, _, parent_items)) => parent_items.push(copy),
                        None => return copy,
                    }
                }
            }
        }
    }
}

/// Comparing never recurses. Floats compare as `f64` does (`nan != nan`), dicts
/// pair by pair in order.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        let mut stack = vec![(self, other)];
        while let Some((a, b)) = stack.pop() {
            if !a.shallow_eq(b) {
                return false;
            }
            let mut i = 0;
            while let (Some((x, _)), Some((y, _))) = (a.child(i), b.child(i)) {
                stack.push((x, y));
                i += 1;
            }
        }
        true
    }
}

impl Value {
    /// A copy of a value that holds no other values.
    fn clone_leaf(&self) -> Value {
        match self {
            Value::None => Value::None,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::BigInt(b) => Value::BigInt(b.clone()),
            Value::Float(f) => Value::Float(*f),
            Value::Str(s) => Value::Str(s.clone()),
            Value::Bytes(b) => Value::Bytes(b.clone()),
            Value::ByteArray(b) => Value::ByteArray(b.clone()),
            Value::SurrogateStr(b) => Value::SurrogateStr(b.clone()),
            Value::Complex { re, im } => Value::Complex { re: *re, im: *im },
            Value::Range { start, stop, step } => Value::Range {
                start: *start,
                stop: *stop,
                step: *step,
            },
            Value::Decimal(d) => Value::Decimal(d.clone()),
            Value::DateTime(d) => Value::DateTime(d.clone()),
            Value::Date(d) => Value::Date(*d),
            Value::Time(t) => Value::Time(t.clone()),
            Value::TimeDelta(d) => Value::TimeDelta(*d),
            Value::TimeZone(tz) => Value::TimeZone(tz.clone()),
            Value::NdArray(a) => Value::NdArray(a.clone()),
            Value::NumpyScalar(s) => Value::NumpyScalar(s.clone()),
            Value::Global(g) => Value::Global(g.clone()),
            // Containers: rebuilt from copies of their children.
            Value::List(_)
            | Value::Tuple(_)
            | Value::Set(_)
            | Value::FrozenSet(_)
            | Value::Dict(_)
            | Value::Mapping(_)
            | Value::Deque(_)
            | Value::Object(_) => self.rebuild(Vec::new()),
        }
    }

    /// A container of the same kind as `self` holding `items`, given in the
    /// order of [`Value::child`].
    fn rebuild(&self, items: Vec<Value>) -> Value {
        fn pairs(items: impl Iterator<Item = Value>) -> Vec<(Value, Value)> {
            let mut items = items;
            let mut out = Vec::with_capacity(items.size_hint().0 / 2);
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                out.push((k, v));
            }
            out
        }
        match self {
            Value::List(_) => Value::List(items),
            Value::Tuple(_) => Value::Tuple(items),
            Value::Set(_) => Value::Set(items),
            Value::FrozenSet(_) => Value::FrozenSet(items),
            Value::Dict(_) => Value::Dict(pairs(items.into_iter())),
            Value::Mapping(m) => Value::Mapping(Box::new(Mapping {
                kind: m.kind.clone(),
                pairs: pairs(items.into_iter()),
            })),
            Value::Deque(d) => Value::Deque(Box::new(Deque {
                items,
                maxlen: d.maxlen,
            })),
            Value::Object(o) => {
                let mut items = items.into_iter();
                let args = items.by_ref().take(o.args.len()).collect();
                let kwargs = pairs(items.by_ref().take(o.kwargs.len() * 2));
                let state = match o.state {
                    Some(_) => items.next(),
                    None => None,
                };
                let list = items.by_ref().take(o.items.len()).collect();
                let dict_items = pairs(items);
                Value::Object(Box::new(Object {
                    class: o.class.clone(),
                    construct: o.construct,
                    args,
                    kwargs,
                    state,
                    items: list,
                    dict_items,
                }))
            }
            leaf => leaf.clone_leaf(),
        }
    }

    /// Equality of everything but the children, which must then compare equal
    /// one by one ([`Value::child`] yields as many on both sides).
    fn shallow_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::None, Value::None) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::BigInt(a), Value::BigInt(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b))
            | (Value::ByteArray(a), Value::ByteArray(b))
            | (Value::SurrogateStr(a), Value::SurrogateStr(b)) => a == b,
            (Value::Complex { re: a, im: b }, Value::Complex { re: c, im: d }) => a == c && b == d,
            (
                Value::Range {
                    start: a,
                    stop: b,
                    step: c,
                },
                Value::Range {
                    start: d,
                    stop: e,
                    step: f,
                },
            ) => (a, b, c) == (d, e, f),
            (Value::Decimal(a), Value::Decimal(b)) => a == b,
            (Value::DateTime(a), Value::DateTime(b)) => a == b,
            (Value::Date(a), Value::Date(b)) => a == b,
            (Value::Time(a), Value::Time(b)) => a == b,
            (Value::TimeDelta(a), Value::TimeDelta(b)) => a == b,
            (Value::TimeZone(a), Value::TimeZone(b)) => a == b,
            (Value::NdArray(a), Value::NdArray(b)) => a == b,
            (Value::NumpyScalar(a), Value::NumpyScalar(b)) => a == b,
            (Value::Global(a), Value::Global(b)) => a == b,
            (Value::List(a), Value::List(b))
            | (Value::Tuple(a), Value::Tuple(b))
            | (Value::Set(a), Value::Set(b))
            | (Value::FrozenSet(a), Value::FrozenSet(b)) => a.len() == b.len(),
            (Value::Dict(a), Value::Dict(b)) => a.len() == b.len(),
            (Value::Mapping(a), Value::Mapping(b)) => {
                a.kind == b.kind && a.pairs.len() == b.pairs.len()
            }
            (Value::Deque(a), Value::Deque(b)) => {
                a.maxlen == b.maxlen && a.items.len() == b.items.len()
            }
            (Value::Object(a), Value::Object(b)) => {
                a.class == b.class
                    && a.construct == b.construct
                    && a.args.len() == b.args.len()
                    && a.kwargs.len() == b.kwargs.len()
                    && a.state.is_some() == b.state.is_some()
                    && a.items.len() == b.items.len()
                    && a.dict_items.len() == b.dict_items.len()
            }
            _ => false,
        }
    }
}

/// The deepest nesting [`Value::check_encodable`] accepts: the default
/// [`DecodeLimits::max_depth`](super::DecodeLimits::max_depth), above what
/// CPython's `pickle.dumps` writes at its default recursion limit (a tuple
/// nested 999 deep; lists and dicts 499).
pub const MAX_ENCODABLE_DEPTH: usize = 1000;

/// Why a [`Value`] should not be sent to a Python peer, from [`Value::check_encodable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnencodableError {
    /// A dict key or set item Python cannot hash (a `list`, `dict`, `set` or
    /// `bytearray`, possibly inside a tuple or frozenset).
    #[error("unhashable type '{found}' in a {container}")]
    Unhashable {
        /// The Python type of the unhashable part.
        found: &'static str,
        /// Where it is: `"dict key"`, `"set"` or `"frozenset"`.
        container: &'static str,
    },
    /// Containers nested deeper than [`MAX_ENCODABLE_DEPTH`].
    #[error("nesting deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::List(items)
    }
}

/// A Python `int` too large for an `i64`, as the minimal little-endian two's
/// complement bytes that pickle's `LONG1`/`LONG4` opcodes carry.
///
/// ```
/// use ecci_proto::pickle::BigInt;
/// let big = BigInt::from_i128(1 << 100);
/// assert_eq!(big.to_string(), "1267650600228229401496703205376");
/// assert_eq!(big.to_i128(), Some(1 << 100));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BigInt {
    le_bytes: Vec<u8>,
}

impl BigInt {
    /// From little-endian two's complement bytes (any length; normalized).
    pub fn from_le_bytes(bytes: &[u8]) -> Self {
        let mut le_bytes = bytes.to_vec();
        // Drop redundant sign-extension bytes, keeping the sign bit intact.
        while le_bytes.len() > 1 {
            let last = le_bytes[le_bytes.len() - 1];
            let prev_sign = le_bytes[le_bytes.len() - 2] & 0x80;
            if (last == 0 && prev_sign == 0) || (last == 0xff && prev_sign != 0) {
                le_bytes.pop();
            } else {
                break;
            }
        }
        if le_bytes.is_empty() {
            le_bytes.push(0);
        }
        Self { le_bytes }
    }

    /// From an `i128`.
    pub fn from_i128(i: i128) -> Self {
        Self::from_le_bytes(&i.to_le_bytes())
    }

    /// The minimal little-endian two's complement bytes.
    pub fn to_le_bytes(&self) -> &[u8] {
        &self.le_bytes
    }

    /// Whether the value is negative.
    pub fn is_negative(&self) -> bool {
        self.le_bytes.last().is_some_and(|b| b & 0x80 != 0)
    }

    /// The value as an `i128`, if it fits.
    pub fn to_i128(&self) -> Option<i128> {
        if self.le_bytes.len() > 16 {
            return None;
        }
        let fill = if self.is_negative() { 0xff } else { 0 };
        let mut buf = [fill; 16];
        buf[..self.le_bytes.len()].copy_from_slice(&self.le_bytes);
        Some(i128::from_le_bytes(buf))
    }

    /// The number of bits of the magnitude, as Python's `int.bit_length()`:
    /// 0 for zero, 8 for 255 and for -255.
    ///
    /// ```
    /// use ecci_proto::pickle::BigInt;
    /// assert_eq!(BigInt::from_i128(1 << 100).bits(), 101);
    /// assert_eq!(BigInt::from_i128(-(1 << 100)).bits(), 101);
    /// ```
    pub fn bits(&self) -> u64 {
        bit_length(&self.magnitude_bytes())
    }

    /// The value as the nearest `f64`, as Python's `float(int)` rounds it
    /// (to nearest, ties to even), or `None` when it rounds beyond `f64::MAX`,
    /// where Python raises `OverflowError`.
    ///
    /// Computed from the bits directly, in time linear in the length.
    ///
    /// ```
    /// use ecci_proto::pickle::BigInt;
    /// assert_eq!(BigInt::from_i128(-(1 << 100)).to_f64(), Some(-(2f64.powi(100))));
    /// let two_to_1024 = BigInt::from_le_bytes(&[&[0u8; 128][..], &[1]].concat());
    /// assert_eq!(two_to_1024.to_f64(), None);
    /// ```
    pub fn to_f64(&self) -> Option<f64> {
        let magnitude = self.magnitude_bytes();
        let bits = bit_length(&magnitude);
        let abs = if bits <= 64 {
            let mut buf = [0u8; 8];
            for (b, m) in buf.iter_mut().zip(&magnitude) {
                *b = *m;
            }
            // Rust's int-to-float conversion rounds to nearest, ties to even.
            #[expect(clippy::cast_precision_loss, reason = "rounded as float(int)")]
            let f = u64::from_le_bytes(buf) as f64;
            f
        } else if bits > 1024 {
            return None;
        } else {
            // The top 64 bits, with every lower bit folded into the last one
            // ("sticky"): rounding those 64 bits to 53 then rounds exactly as
            // rounding the whole number would.
            let shift = bits - 64;
            let (byte, bit) = (
                usize::try_from(shift / 8).ok()?,
                u32::try_from(shift % 8).ok()?,
            );
            let mut window = [0u8; 16];
            for (w, m) in window
                .iter_mut()
                .zip(magnitude.get(byte..).unwrap_or_default())
            {
                *w = *m;
            }
            let top =
                u64::try_from((u128::from_le_bytes(window) >> bit) & u128::from(u64::MAX)).ok()?;
            let below = magnitude.get(..byte).unwrap_or_default();
            let low_bits = magnitude.get(byte).map_or(0, |b| b & ((1u8 << bit) - 1));
            let sticky = below.iter().any(|&b| b != 0) || low_bits != 0;
            #[expect(clippy::cast_precision_loss, reason = "rounded as float(int)")]
            let rounded = (top | u64::from(sticky)) as f64;
            // 2^shift, exact: shift <= 960 is a normal exponent.
            let scale = f64::from_bits((shift + 1023) << 52);
            rounded * scale
        };
        if abs.is_infinite() {
            return None;
        }
        Some(if self.is_negative() { -abs } else { abs })
    }

    /// The magnitude as little-endian bytes (not normalized).
    fn magnitude_bytes(&self) -> Vec<u8> {
        let mut bytes = self.le_bytes.clone();
        if self.is_negative() {
            // Two's complement negation: invert and add one.
            let mut carry = true;
            for b in &mut bytes {
                let (v, c) = (!*b).overflowing_add(u8::from(carry));
                *b = v;
                carry = c;
            }
        }
        bytes
    }

    /// The magnitude as little-endian base-2^32 limbs.
    fn magnitude_limbs(&self) -> Vec<u32> {
        self.magnitude_bytes()
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect()
    }
}

/// The number of significant bits of a little-endian magnitude.
fn bit_length(magnitude: &[u8]) -> u64 {
    match magnitude.iter().rposition(|&b| b != 0) {
        None => 0,
        Some(top) => top as u64 * 8 + u64::from(8 - magnitude[top].leading_zeros()),
    }
}

/// The most decimal digits [`BigInt`]'s `Display` writes, as CPython's default
/// `sys.get_int_max_str_digits()`: converting to decimal costs time quadratic
/// in the length, and a peer can send an int of millions of digits.
pub(crate) const MAX_DECIMAL_DIGITS: usize = 4300;

/// Writes the decimal form when it has at most 4300 digits
/// (as Python's `str(int)` does), and `<int of N bits>` (or `<negative int of
/// N bits>`) otherwise, so that formatting any received value is cheap.
///
/// ```
/// use ecci_proto::pickle::BigInt;
/// let huge = BigInt::from_le_bytes(&[0x5a; 1 << 20]);
/// assert_eq!(huge.to_string(), "<int of 8388607 bits>");
/// ```
impl fmt::Display for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every number of more than this many bits has more than 4300 digits
        // (2^14300 has 4305), so the conversion is only attempted below it.
        const MAX_DECIMAL_BITS: u64 = 14_300;
        let bits = self.bits();
        let sign = if self.is_negative() { "negative " } else { "" };
        if bits > MAX_DECIMAL_BITS {
            return write!(f, "<{sign}int of {bits} bits>");
        }
        let mut limbs = self.magnitude_limbs();
        let mut chunks = Vec::new(); // base 10^9, least significant first
        loop {
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            if limbs.is_empty() {
                break;
            }
            let mut rem = 0u64;
            for limb in limbs.iter_mut().rev() {
                let cur = (rem << 32) | u64::from(*limb);
                *limb = u32::try_from(cur / 1_000_000_000).unwrap_or(u32::MAX);
                rem = cur % 1_000_000_000;
            }
            chunks.push(rem);
        }
        let Some((most, rest)) = chunks.split_last() else {
            return f.write_str("0");
        };
        let digits = most.to_string();
        if digits.len() + 9 * rest.len() > MAX_DECIMAL_DIGITS {
            return write!(f, "<{sign}int of {bits} bits>");
        }
        if self.is_negative() {
            f.write_str("-")?;
        }
        f.write_str(&digits)?;
        for c in rest.iter().rev() {
            write!(f, "{c:09}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigint_display_matches_i128() {
        for i in [
            0i128,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            i64::MAX as i128 + 1,
            i64::MIN as i128 - 1,
            1 << 100,
            -(1 << 100),
            i128::MAX,
            i128::MIN,
            999_999_999_999_999_999,
            1_000_000_000_000_000_000,
        ] {
            let b = BigInt::from_i128(i);
            assert_eq!(b.to_string(), i.to_string());
            assert_eq!(b.to_i128(), Some(i));
            assert_eq!(b.is_negative(), i < 0);
        }
    }

    /// `10^k`, by repeated multiplication of the bytes.
    fn ten_to(k: usize) -> BigInt {
        let mut bytes = vec![1u8];
        for _ in 0..k {
            let mut carry = 0u16;
            for b in &mut bytes {
                let cur = u16::from(*b) * 10 + carry;
                *b = cur as u8;
                carry = cur >> 8;
            }
            if carry != 0 {
                bytes.push(carry as u8);
            }
        }
        bytes.push(0);
        BigInt::from_le_bytes(&bytes)
    }

    /// `big - 1`, for a positive `big`.
    fn minus_one(big: &BigInt) -> BigInt {
        let mut bytes = big.to_le_bytes().to_vec();
        for b in &mut bytes {
            let (v, borrow) = b.overflowing_sub(1);
            *b = v;
            if !borrow {
                break;
            }
        }
        BigInt::from_le_bytes(&bytes)
    }

    fn negate(big: &BigInt) -> BigInt {
        let mut bytes = big.to_le_bytes().to_vec();
        bytes.push(if big.is_negative() { 0xff } else { 0 });
        let mut carry = true;
        for b in &mut bytes {
            let (v, c) = (!*b).overflowing_add(u8::from(carry));
            *b = v;
            carry = c;
        }
        BigInt::from_le_bytes(&bytes)
    }

    #[test]
    fn bigint_display_stops_at_4300_digits() {
        #[track_caller]
        fn check(big: &BigInt, expected: &str) {
            let shown = big.to_string();
            let shown = if shown.len() > 40 {
                format!(
                    "{}…{} digits",
                    &shown[..3],
                    shown.trim_start_matches('-').len()
                )
            } else {
                shown
            };
            assert_eq!(shown, expected);
        }
        let largest = minus_one(&ten_to(4300));
        check(&largest, "999…4300 digits");
        check(&negate(&largest), "-99…4300 digits");
        check(&ten_to(4300), "<int of 14285 bits>");
        check(&negate(&ten_to(4300)), "<negative int of 14285 bits>");
        check(&ten_to(4299), "100…4300 digits");
        check(&BigInt::from_le_bytes(&[0xff; 4000]), "-1");
        check(
            &BigInt::from_le_bytes(&[&[0xff; 4000][..], &[0]].concat()),
            "<int of 32000 bits>",
        );
    }

    #[test]
    fn bigint_bits() {
        for (i, bits) in [
            (0i128, 0),
            (1, 1),
            (-1, 1),
            (255, 8),
            (-255, 8),
            (-256, 9),
            (i128::MAX, 127),
            (i128::MIN, 128),
        ] {
            assert_eq!(BigInt::from_i128(i).bits(), bits, "{i}");
        }
        assert_eq!(ten_to(4300).bits(), 14285);
    }

    #[test]
    fn bigint_to_f64_rounds_as_python() {
        #[track_caller]
        fn check(big: &BigInt, expected: Option<f64>) {
            assert_eq!(big.to_f64(), expected, "{big}");
            assert_eq!(negate(big).to_f64(), expected.map(|f| -f), "-{big}");
        }
        let pow2 = |k: usize| {
            let mut bytes = vec![0u8; k / 8 + 2];
            bytes[k / 8] = 1 << (k % 8);
            BigInt::from_le_bytes(&bytes)
        };
        let shifted = |i: i128, k: usize| {
            let mut bytes = vec![0u8; k / 8];
            bytes.extend(i.to_le_bytes());
            BigInt::from_le_bytes(&bytes)
        };
        check(&BigInt::from_i128(0), Some(0.0));
        check(&pow2(64), Some(2f64.powi(64)));
        // Ties go to even; a bit below the tie breaks it upwards.
        check(&shifted((1 << 53) + 1, 800), Some(2f64.powi(853)));
        check(
            &shifted((1 << 53) + 3, 800),
            Some(((1u64 << 53) + 4) as f64 * 2f64.powi(800)),
        );
        let just_above_tie = BigInt::from_le_bytes(
            &[&[1u8][..], &[0; 99], &((1i128 << 53) + 1).to_le_bytes()].concat(),
        );
        check(
            &just_above_tie,
            Some(((1u64 << 53) + 2) as f64 * 2f64.powi(800)),
        );
        check(&minus_one(&pow2(1024)), None);
        check(&pow2(1023), Some(2f64.powi(1023)));
        // f64::MAX is 2^1024 - 2^971; halfway to 2^1024 rounds up, to overflow.
        let max = minus_one(&pow2(1024));
        let max = BigInt::from_le_bytes(
            &max.to_le_bytes()
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if i < 121 {
                        0
                    } else if i == 121 {
                        b & 0xf8
                    } else {
                        b
                    }
                })
                .collect::<Vec<_>>(),
        );
        check(&max, Some(f64::MAX));
        let tie = BigInt::from_le_bytes(
            &max.to_le_bytes()
                .iter()
                .enumerate()
                .map(|(i, &b)| if i == 121 { b | 4 } else { b })
                .collect::<Vec<_>>(),
        );
        check(&minus_one(&tie), Some(f64::MAX));
        check(&tie, None);
        check(&pow2(100_000), None);
    }

    #[test]
    fn bigint_to_f64_and_display_match_cpython() {
        // Deterministic ints of every size up to 1100 bits, both signs, some
        // with long runs of ones or zeros to hit the rounding ties.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut cases = Vec::new();
        for len in 1..=140usize {
            for _ in 0..3 {
                let pattern = next() % 4;
                let mut bytes: Vec<u8> = (0..len)
                    .map(|_| match pattern {
                        0 => 0,
                        1 => 0xff,
                        _ => next() as u8,
                    })
                    .collect();
                bytes.push(next() as u8);
                cases.push(BigInt::from_le_bytes(&bytes));
            }
        }
        let input: String = cases
            .iter()
            .map(|b| {
                b.to_le_bytes()
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        let script = "import sys\n\
            for line in sys.stdin.read().split():\n\
            \x20   n = int.from_bytes(bytes.fromhex(line), 'little', signed=True)\n\
            \x20   try:\n\
            \x20       f = float(n).hex()\n\
            \x20   except OverflowError:\n\
            \x20       f = 'overflow'\n\
            \x20   print(f, n)\n";
        let output = crate::testutil::python(script, input.as_bytes());
        let output = String::from_utf8(output).expect("ascii");
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), cases.len());
        for (big, line) in cases.iter().zip(lines) {
            let (float, decimal) = line.split_once(' ').expect("two fields");
            assert_eq!(big.to_string(), decimal);
            let expected = match float {
                "overflow" => None,
                hex => Some(hex),
            };
            let got = big.to_f64().map(hex_float);
            assert_eq!(got.as_deref(), expected, "{decimal}");
        }
    }

    /// Python's `float.hex()` of a finite float.
    fn hex_float(f: f64) -> String {
        let sign = if f.is_sign_negative() { "-" } else { "" };
        if f == 0.0 {
            return format!("{sign}0x0.0p+0");
        }
        let bits = f.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
        let mantissa = bits & ((1 << 52) - 1);
        format!("{sign}0x1.{mantissa:013x}p{exponent:+}")
    }

    proptest::proptest! {
        #[test]
        fn bigint_to_f64_matches_int_casts(i: i128, shift in 0usize..1100) {
            proptest::prop_assert_eq!(BigInt::from_i128(i).to_f64(), Some(i as f64));
            let mut bytes = vec![0u8; shift / 8];
            bytes.extend(i.to_le_bytes());
            let scaled = (i as f64) * 2f64.powi(i32::try_from(shift / 8 * 8).unwrap_or(0));
            let expected = Some(scaled).filter(|f| f.is_finite());
            proptest::prop_assert_eq!(BigInt::from_le_bytes(&bytes).to_f64(), expected);
        }
    }

    #[test]
    fn check_encodable() {
        #[track_caller]
        fn check(value: Value, expected: Result<(), &str>) {
            let got = value.check_encodable().map_err(|e| e.to_string());
            assert_eq!(got, expected.map_err(str::to_owned));
            assert_eq!(value.is_hashable(), value.unhashable_part().is_none());
        }
        let list = || Value::List(vec![Value::from(1)]);
        let nested =
            |depth: usize| (0..depth).fold(Value::None, |inner, _| Value::List(vec![inner]));
        check(Value::dict([("a", list())]), Ok(()));
        check(
            Value::Dict(vec![(list(), Value::None)]),
            Err("unhashable type 'list' in a dict key"),
        );
        check(
            Value::Dict(vec![(
                Value::Tuple(vec![Value::from(1), Value::ByteArray(vec![])]),
                Value::None,
            )]),
            Err("unhashable type 'bytearray' in a dict key"),
        );
        check(
            Value::Set(vec![Value::Dict(vec![])]),
            Err("unhashable type 'dict' in a set"),
        );
        check(
            Value::FrozenSet(vec![Value::Tuple(vec![Value::Set(vec![])])]),
            Err("unhashable type 'set' in a frozenset"),
        );
        // Found below the top too.
        check(
            Value::List(vec![Value::from(1), Value::Set(vec![list()])]),
            Err("unhashable type 'list' in a set"),
        );
        check(
            Value::Set(vec![
                Value::Tuple(vec![Value::from("a")]),
                Value::Bytes(vec![]),
            ]),
            Ok(()),
        );
        check(nested(MAX_ENCODABLE_DEPTH), Ok(()));
        check(
            nested(MAX_ENCODABLE_DEPTH + 1),
            Err("nesting deeper than 1000"),
        );
        let dicts =
            |depth: usize| (0..depth).fold(Value::None, |inner, _| Value::dict([("k", inner)]));
        check(dicts(MAX_ENCODABLE_DEPTH), Ok(()));
        check(
            dicts(MAX_ENCODABLE_DEPTH + 1),
            Err("nesting deeper than 1000"),
        );
    }

    #[test]
    fn check_encodable_accepts_what_a_rust_peer_decodes() {
        use super::super::{DecodeLimits, Protocol, decode, encode};
        for depth in [MAX_ENCODABLE_DEPTH, MAX_ENCODABLE_DEPTH + 1] {
            let value = (0..depth).fold(Value::None, |inner, _| Value::List(vec![inner]));
            let decoded = decode(&encode(&value, Protocol::V4), &DecodeLimits::default());
            assert_eq!(decoded.is_ok(), value.check_encodable().is_ok(), "{depth}");
        }
    }

    #[test]
    fn bigint_normalizes() {
        assert_eq!(
            BigInt::from_le_bytes(&[0xff, 0x00, 0x00]).to_le_bytes(),
            [0xff, 0x00]
        );
        assert_eq!(BigInt::from_le_bytes(&[0x7f, 0x00]).to_le_bytes(), [0x7f]);
        assert_eq!(
            BigInt::from_le_bytes(&[0x80, 0xff, 0xff]).to_le_bytes(),
            [0x80]
        );
        assert_eq!(BigInt::from_le_bytes(&[]).to_le_bytes(), [0]);
        assert_eq!(BigInt::from_le_bytes(&[0u8; 40]).to_i128(), Some(0));
    }
}
