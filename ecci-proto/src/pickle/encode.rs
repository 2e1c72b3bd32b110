//! The pickle encoder: writes protocol 2, 3, 4 or 5 without a memo, so that any
//! Python 3 `pickle.loads` rebuilds the value.
//!
//! The output follows what CPython writes for the same value, minus `FRAME`
//! and the memo: `bytes` in protocol 2 is `_codecs.encode(str, 'latin1')`,
//! `bytearray` and (below protocol 4) `set`/`frozenset` are a global called
//! through `REDUCE`, and lists, dicts and sets are filled in batches of 1000.
//! Typed values are written as their classes pickle themselves (numpy arrays
//! under the `numpy.core.multiarray` names, which numpy 1.x and 2.x both
//! load). Inert objects are written as data unless the caller allows objects
//! ([`encode_with_objects`]).

use super::op;
use super::py::{self, Construct, DType, Global, MappingKind, NdArray, Order, TimeZone};
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
    /// Protocol 5: Python 3.8+; numpy arrays as `_frombuffer` of an in-band
    /// `bytearray` (`BYTEARRAY8`), as numpy writes them.
    V5,
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
///
/// Typed values are written so that Python unpickles the very type (a numpy
/// array, a `datetime`, a `Decimal`, …). An inert [`Object`](super::Object)
/// (or a [`Value::Global`] of a class that is not a well-known data type) is
/// **not** written as an object, so that a Rust relay never sends a Python
/// peer something that runs code when loaded: it becomes the dict
/// `{'__class__': 'module.name', 'args': (…), …}` holding its data, and
/// [`Value::check_encodable`] reports it. [`encode_with_objects`] writes
/// objects as objects.
pub fn encode(value: &Value, protocol: Protocol) -> Vec<u8> {
    encode_inner(value, protocol, false)
}

/// Like [`encode`], but writes inert objects and globals back as the objects
/// they were (class, arguments, state), so that the Python peer calls those
/// classes when it loads the pickle. Use it only for values from a peer you
/// trust as much as you trust the receiver.
///
/// ```
/// use ecci_proto::pickle::{DecodeLimits, Protocol, decode, encode, encode_with_objects};
/// let wire = b"\x80\x02c__main__\nPoint\nK\x01K\x02\x86R.";
/// let point = decode(wire, &DecodeLimits::default())?;
/// assert_eq!(point.to_string(), "__main__.Point(1, 2)");
/// let as_data = decode(&encode(&point, Protocol::V2), &DecodeLimits::default())?;
/// assert_eq!(as_data.to_string(), "{'__class__': '__main__.Point', 'args': (1, 2)}");
/// assert_eq!(decode(&encode_with_objects(&point, Protocol::V2), &DecodeLimits::default())?, point);
/// # Ok::<(), ecci_proto::pickle::DecodeError>(())
/// ```
pub fn encode_with_objects(value: &Value, protocol: Protocol) -> Vec<u8> {
    encode_inner(value, protocol, true)
}

fn encode_inner(value: &Value, protocol: Protocol, objects: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + payload_hint(value));
    let version = match protocol {
        Protocol::V2 => 2,
        Protocol::V3 => 3,
        Protocol::V4 => 4,
        Protocol::V5 => 5,
    };
    out.extend([op::PROTO, version]);
    Encoder {
        out,
        protocol,
        objects,
    }
    .value(value)
}

/// Whether a global is a well-known data type that is safe to name to a Python
/// peer (loading it imports a standard module and calls nothing).
fn is_safe_global(g: &Global) -> bool {
    py::is_well_known_global(&g.module, &g.name)
}

/// The bytes a value's large leaves need, to size the output once (a frame
/// envelope is one big array two dicts down). Looks two levels deep, no more.
fn payload_hint(value: &Value) -> usize {
    fn leaf(value: &Value) -> usize {
        match value {
            Value::NdArray(a) => a.data().len(),
            Value::Bytes(b) | Value::ByteArray(b) | Value::SurrogateStr(b) => b.len(),
            Value::Str(s) => s.len(),
            _ => 0,
        }
    }
    // Each pair's opcodes and short key, roughly.
    const PER_PAIR: usize = 16;
    let mut total = leaf(value);
    if let Value::Dict(pairs) = value {
        for (k, v) in pairs {
            total = total
                .saturating_add(PER_PAIR)
                .saturating_add(leaf(k))
                .saturating_add(leaf(v));
            if let Value::Dict(inner) = v {
                for (k, w) in inner {
                    total = total
                        .saturating_add(PER_PAIR)
                        .saturating_add(leaf(k))
                        .saturating_add(leaf(w));
                }
            }
        }
    }
    total.min(1 << 30)
}

/// What is left to write after a value's opening opcodes.
enum Task<'v> {
    Value(&'v Value),
    Op(u8),
    Str(&'static str),
}

/// A tuple's items and closing opcode, as CPython writes it.
fn tuple_tasks<'v>(items: &'v [Value], rest: &mut Vec<Task<'v>>) {
    match items {
        [] => rest.push(Task::Op(op::EMPTY_TUPLE)),
        [_] | [_, _] | [_, _, _] => {
            rest.extend(items.iter().map(Task::Value));
            rest.push(Task::Op(op::TUPLE1 + (items.len() - 1) as u8));
        }
        _ => {
            rest.push(Task::Op(op::MARK));
            rest.extend(items.iter().map(Task::Value));
            rest.push(Task::Op(op::TUPLE));
        }
    }
}

/// A list's items after `EMPTY_LIST`, in batches of 1000.
fn list_tasks<'v>(items: &'v [Value], rest: &mut Vec<Task<'v>>) {
    for batch in items.chunks(BATCH) {
        if let [item] = batch {
            rest.extend([Task::Value(item), Task::Op(op::APPEND)]);
        } else {
            rest.push(Task::Op(op::MARK));
            rest.extend(batch.iter().map(Task::Value));
            rest.push(Task::Op(op::APPENDS));
        }
    }
}

/// A dict's pairs after `EMPTY_DICT`, in batches of 1000.
fn pair_tasks<'v>(pairs: &'v [(Value, Value)], rest: &mut Vec<Task<'v>>) {
    for batch in pairs.chunks(BATCH) {
        if let [(k, v)] = batch {
            rest.extend([Task::Value(k), Task::Value(v), Task::Op(op::SETITEM)]);
        } else {
            rest.push(Task::Op(op::MARK));
            for (k, v) in batch {
                rest.extend([Task::Value(k), Task::Value(v)]);
            }
            rest.push(Task::Op(op::SETITEMS));
        }
    }
}

struct Encoder {
    out: Vec<u8>,
    protocol: Protocol,
    objects: bool,
}

impl Encoder {
    fn value(mut self, value: &Value) -> Vec<u8> {
        self.write(value);
        self.out.push(op::STOP);
        self.out
    }

    /// Writes `value` without recursion: containers push their children and
    /// closing opcodes as tasks, so any depth is written on a small stack.
    fn write(&mut self, value: &Value) {
        // Room for a small message's tasks at once; more grow as usual.
        let mut stack = Vec::with_capacity(16);
        stack.push(Task::Value(value));
        // One buffer for what each value adds, reused.
        let mut rest = Vec::with_capacity(16);
        while let Some(task) = stack.pop() {
            let value = match task {
                Task::Value(v) => v,
                Task::Op(op) => {
                    self.out.push(op);
                    continue;
                }
                Task::Str(s) => {
                    self.str(s);
                    continue;
                }
            };
            self.step(value, &mut rest);
            stack.extend(rest.drain(..).rev());
        }
    }

    /// Writes what `value` starts with and adds, in order, what must follow it.
    fn step<'v>(&mut self, value: &'v Value, rest: &mut Vec<Task<'v>>) {
        match value {
            Value::None => self.out.push(op::NONE),
            Value::Bool(true) => self.out.push(op::NEWTRUE),
            Value::Bool(false) => self.out.push(op::NEWFALSE),
            Value::Int(i) => self.int(*i),
            Value::BigInt(big) => self.big_int(big),
            Value::Float(f) => self.float(*f),
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
            Value::Tuple(items) => tuple_tasks(items, rest),
            Value::List(items) => {
                self.out.push(op::EMPTY_LIST);
                list_tasks(items, rest);
            }
            Value::Dict(pairs) => {
                self.out.push(op::EMPTY_DICT);
                pair_tasks(pairs, rest);
            }
            Value::Set(items) => match self.protocol {
                Protocol::V4 | Protocol::V5 => {
                    self.out.push(op::EMPTY_SET);
                    for batch in items.chunks(BATCH) {
                        rest.push(Task::Op(op::MARK));
                        rest.extend(batch.iter().map(Task::Value));
                        rest.push(Task::Op(op::ADDITEMS));
                    }
                }
                Protocol::V2 | Protocol::V3 => self.set_by_reduce("set", items, rest),
            },
            Value::FrozenSet(items) => match self.protocol {
                Protocol::V4 | Protocol::V5 => {
                    self.out.push(op::MARK);
                    rest.extend(items.iter().map(Task::Value));
                    rest.push(Task::Op(op::FROZENSET));
                }
                Protocol::V2 | Protocol::V3 => self.set_by_reduce("frozenset", items, rest),
            },
            Value::SurrogateStr(b) => self.str_bytes(b),
            Value::Complex { re, im } => {
                self.global("complex");
                self.float(*re);
                self.float(*im);
                self.out.extend([op::TUPLE2, op::REDUCE]);
            }
            Value::Range { start, stop, step } => {
                self.global("range");
                self.int(*start);
                self.int(*stop);
                self.int(*step);
                self.out.extend([op::TUPLE3, op::REDUCE]);
            }
            Value::Decimal(d) => {
                self.global_of("decimal", "Decimal");
                self.str(d.as_str());
                self.out.extend([op::TUPLE1, op::REDUCE]);
            }
            Value::Date(d) => {
                self.global_of("datetime", "date");
                self.bytes(&py::datetime::pack_date(*d));
                self.out.extend([op::TUPLE1, op::REDUCE]);
            }
            Value::Time(t) => {
                self.global_of("datetime", "time");
                self.bytes(&py::datetime::pack_time(t));
                self.tz_args(t.tz.as_ref());
            }
            Value::DateTime(dt) => {
                self.global_of("datetime", "datetime");
                self.bytes(&py::datetime::pack_datetime(dt));
                self.tz_args(dt.time.tz.as_ref());
            }
            Value::TimeDelta(d) => self.timedelta(*d),
            Value::TimeZone(tz) => self.timezone(tz),
            Value::NdArray(a) => self.ndarray(a),
            Value::NumpyScalar(s) => {
                self.global_of("numpy.core.multiarray", "scalar");
                self.dtype(s.dtype());
                self.bytes(s.data());
                self.out.extend([op::TUPLE2, op::REDUCE]);
            }
            Value::Mapping(m) => match &m.kind {
                MappingKind::OrderedDict => {
                    self.global_of("collections", "OrderedDict");
                    self.out.extend([op::EMPTY_TUPLE, op::REDUCE]);
                    pair_tasks(&m.pairs, rest);
                }
                MappingKind::DefaultDict { factory } => {
                    self.global_of("collections", "defaultdict");
                    match factory {
                        Some(g) => self.global_value(g),
                        None => self.out.push(op::NONE),
                    }
                    self.out.extend([op::TUPLE1, op::REDUCE]);
                    pair_tasks(&m.pairs, rest);
                }
                MappingKind::Counter => {
                    self.global_of("collections", "Counter");
                    self.out.push(op::EMPTY_DICT);
                    pair_tasks(&m.pairs, rest);
                    rest.extend([Task::Op(op::TUPLE1), Task::Op(op::REDUCE)]);
                }
            },
            Value::Deque(d) => {
                self.global_of("collections", "deque");
                self.out.push(op::EMPTY_LIST);
                list_tasks(&d.items, rest);
                match d.maxlen {
                    Some(n) => {
                        // A maxlen beyond i64 cannot exist in Python.
                        let n = i64::try_from(n).unwrap_or(i64::MAX);
                        let mut tmp = Encoder {
                            out: Vec::new(),
                            protocol: self.protocol,
                            objects: false,
                        };
                        tmp.int(n);
                        rest.extend(tmp.out.into_iter().map(Task::Op));
                    }
                    None => rest.push(Task::Op(op::NONE)),
                }
                rest.extend([Task::Op(op::TUPLE2), Task::Op(op::REDUCE)]);
            }
            Value::Global(g) => self.global_value(g),
            Value::Object(o) => {
                if self.objects {
                    self.object(o, rest);
                } else {
                    self.object_as_data(o, rest);
                }
            }
        }
    }

    /// A class or function as a value: by name when it is a well-known data type
    /// (or objects are allowed), else its name as text.
    fn global_value(&mut self, g: &Global) {
        if self.objects || is_safe_global(g) {
            // Python 2 names (what protocol 2 writes) under their Python 3 names,
            // which every protocol loads.
            let module = match g.module.as_str() {
                "__builtin__" => "builtins",
                "copy_reg" => "copyreg",
                other => other,
            };
            let name = match (module, g.name.as_str()) {
                ("builtins", "xrange") => "range",
                (_, name) => name,
            };
            self.global_of(module, name);
        } else {
            self.str(&g.to_string());
        }
    }

    fn float(&mut self, f: f64) {
        self.out.push(op::BINFLOAT);
        self.out.extend(f.to_be_bytes());
    }

    fn timedelta(&mut self, d: py::TimeDelta) {
        self.global_of("datetime", "timedelta");
        self.int(d.days.into());
        self.int(d.seconds.into());
        self.int(d.microseconds.into());
        self.out.extend([op::TUPLE3, op::REDUCE]);
    }

    fn timezone(&mut self, tz: &TimeZone) {
        self.global_of("datetime", "timezone");
        self.timedelta(tz.offset);
        match &tz.name {
            Some(name) => {
                self.str(name);
                self.out.push(op::TUPLE2);
            }
            None => self.out.push(op::TUPLE1),
        }
        self.out.push(op::REDUCE);
    }

    /// The rest of a `date`/`time`/`datetime` argument tuple after the packed state.
    fn tz_args(&mut self, tz: Option<&TimeZone>) {
        match tz {
            Some(tz) => {
                self.timezone(tz);
                self.out.push(op::TUPLE2);
            }
            None => self.out.push(op::TUPLE1),
        }
        self.out.push(op::REDUCE);
    }

    /// `numpy.dtype(code, False, True)` with its `BUILD` state, as numpy writes it.
    fn dtype(&mut self, dtype: DType) {
        self.global_of("numpy", "dtype");
        self.str(dtype.scalar.code());
        self.out
            .extend([op::NEWFALSE, op::NEWTRUE, op::TUPLE3, op::REDUCE, op::MARK]);
        self.int(3);
        self.str(&dtype.order_char().to_string());
        self.out.extend([op::NONE, op::NONE, op::NONE]);
        self.int(-1);
        self.int(-1);
        self.int(0);
        self.out.extend([op::TUPLE, op::BUILD]);
    }

    fn shape(&mut self, shape: &[usize]) {
        let dims: Vec<Value> = shape
            .iter()
            .map(|&d| Value::Int(i64::try_from(d).unwrap_or(i64::MAX)))
            .collect();
        self.tuple(&dims);
    }

    fn ndarray(&mut self, a: &NdArray) {
        if self.protocol == Protocol::V5 {
            // _frombuffer(bytearray, dtype, shape, order), the buffer in-band.
            self.global_of("numpy.core.numeric", "_frombuffer");
            self.out.extend([op::MARK, op::BYTEARRAY8]);
            self.out.extend((a.data().len() as u64).to_le_bytes());
            self.out.extend_from_slice(a.data());
            self.dtype(a.dtype());
            self.shape(a.shape());
            self.str(match a.order() {
                Order::C => "C",
                Order::F => "F",
            });
            self.out.extend([op::TUPLE, op::REDUCE]);
            return;
        }
        // _reconstruct(ndarray, (0,), b'b') + BUILD (1, shape, dtype, is_fortran, data)
        self.global_of("numpy.core.multiarray", "_reconstruct");
        self.global_of("numpy", "ndarray");
        self.int(0);
        self.out.push(op::TUPLE1);
        self.bytes(b"b");
        self.out.extend([op::TUPLE3, op::REDUCE, op::MARK]);
        self.int(1);
        self.shape(a.shape());
        self.dtype(a.dtype());
        self.out.push(if a.order() == Order::F {
            op::NEWTRUE
        } else {
            op::NEWFALSE
        });
        self.bytes(a.data());
        self.out.extend([op::TUPLE, op::BUILD]);
    }

    fn object<'v>(&mut self, o: &'v py::Object, rest: &mut Vec<Task<'v>>) {
        self.global_value(&o.class);
        tuple_tasks(&o.args, rest);
        match (o.construct, o.kwargs.is_empty()) {
            (Construct::Call, true) => rest.push(Task::Op(op::REDUCE)),
            (Construct::New, true) => rest.push(Task::Op(op::NEWOBJ)),
            (_, false) => {
                rest.push(Task::Op(op::EMPTY_DICT));
                pair_tasks(&o.kwargs, rest);
                rest.push(Task::Op(op::NEWOBJ_EX));
            }
        }
        list_tasks(&o.items, rest);
        pair_tasks(&o.dict_items, rest);
        if let Some(state) = &o.state {
            rest.extend([Task::Value(state), Task::Op(op::BUILD)]);
        }
    }

    /// `{'__class__': 'module.name', 'args': (…)[, 'kwargs': {…}][, 'state': …]
    /// [, 'items': […]][, 'dict_items': {…}]}`.
    fn object_as_data<'v>(&mut self, o: &'v py::Object, rest: &mut Vec<Task<'v>>) {
        self.out.extend([op::EMPTY_DICT, op::MARK]);
        self.str("__class__");
        self.str(&o.class.to_string());
        self.str("args");
        tuple_tasks(&o.args, rest);
        if !o.kwargs.is_empty() {
            rest.extend([Task::Str("kwargs"), Task::Op(op::EMPTY_DICT)]);
            pair_tasks(&o.kwargs, rest);
        }
        if let Some(state) = &o.state {
            rest.extend([Task::Str("state"), Task::Value(state)]);
        }
        if !o.items.is_empty() {
            rest.extend([Task::Str("items"), Task::Op(op::EMPTY_LIST)]);
            list_tasks(&o.items, rest);
        }
        if !o.dict_items.is_empty() {
            rest.extend([Task::Str("dict_items"), Task::Op(op::EMPTY_DICT)]);
            pair_tasks(&o.dict_items, rest);
        }
        rest.push(Task::Op(op::SETITEMS));
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
        self.str_bytes(s.as_bytes());
    }

    /// A `str` from its (generalized) UTF-8 bytes.
    fn str_bytes(&mut self, s: &[u8]) {
        let len = s.len();
        match (u8::try_from(len), u32::try_from(len)) {
            (Ok(short), _) if matches!(self.protocol, Protocol::V4 | Protocol::V5) => {
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
        self.out.extend(s);
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

    /// A tuple of leaves (shapes, argument lists), written at once.
    fn tuple(&mut self, items: &[Value]) {
        let mut rest = Vec::new();
        tuple_tasks(items, &mut rest);
        for task in rest {
            match task {
                Task::Value(v) => self.write(v),
                Task::Op(op) => self.out.push(op),
                Task::Str(s) => self.str(s),
            }
        }
    }

    /// `builtins.set(list)` / `builtins.frozenset(list)`, as CPython writes below protocol 4.
    fn set_by_reduce<'v>(&mut self, name: &str, items: &'v [Value], rest: &mut Vec<Task<'v>>) {
        self.global(name);
        self.out.push(op::EMPTY_LIST);
        list_tasks(items, rest);
        rest.extend([Task::Op(op::TUPLE1), Task::Op(op::REDUCE)]);
    }

    /// A `GLOBAL` of a builtin, named as the protocol's Python would name it.
    fn global(&mut self, name: &str) {
        let module = match self.protocol {
            Protocol::V2 => "__builtin__",
            Protocol::V3 | Protocol::V4 | Protocol::V5 => "builtins",
        };
        self.global_of(module, name);
    }

    /// A global by module and name: `GLOBAL` when both are single lines, else
    /// `STACK_GLOBAL` (protocol 4 and up; below, such a name is written as text).
    fn global_of(&mut self, module: &str, name: &str) {
        let one_line = !module.contains('\n') && !name.contains('\n');
        if one_line {
            self.out.push(op::GLOBAL);
            self.out.extend(module.as_bytes());
            self.out.push(b'\n');
            self.out.extend(name.as_bytes());
            self.out.push(b'\n');
        } else if matches!(self.protocol, Protocol::V4 | Protocol::V5) {
            self.str(module);
            self.str(name);
            self.out.push(op::STACK_GLOBAL);
        } else {
            // No protocol 2/3 opcode can name it: the name as text, never a call.
            self.str(&format!("{module}.{name}"));
        }
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
