//! The pickle decoder: every value as inert data, nothing ever called.
//!
//! The stream is run on a small virtual machine whose stack and memo hold ids
//! into an arena of nodes, so that a container memoized right after its
//! creation and filled afterwards is seen filled through every reference, as in
//! CPython. The tree is materialized at `STOP` by an explicit-stack walk that
//! counts depth, detects cycles and charges a budget, so that neither deep
//! nesting nor a shared-reference bomb can overflow the stack or exhaust
//! memory. Nothing named by the stream is ever called or looked up: the few
//! globals Python 3 needs for plain data (`bytes`, `bytearray`, `set`,
//! `frozenset` below protocol 4) are interpreted here, every other
//! class-building opcode records an inert [`Object`] (class name, arguments,
//! state, items), and [`py`](super::py) maps the well-known classes to typed
//! values. `bytes` payloads stay ranges of the input until the result is built,
//! so that a numpy array's data is a view on a [`Bytes`] input.

use std::collections::HashMap;
use std::mem::size_of;

use bytes::Bytes;

use super::op;
use super::py::numpy::{self as np, Graph, View};
use super::py::{self, Construct, Global, Object};
use super::{BigInt, Value};

/// Bounds applied while decoding untrusted input.
///
/// ```
/// use ecci_proto::pickle::{DecodeLimits, decode};
/// let limits = DecodeLimits { max_depth: 4, ..DecodeLimits::default() };
/// // [[[[[]]]]]: five nested lists.
/// assert!(decode(b"\x80\x02]]]]]aaaa.", &limits).is_err());
/// assert!(decode(b"\x80\x02]]]]aaa.", &limits).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted input, in bytes (default 64 MiB). Checked before anything else.
    pub max_input: usize,
    /// Deepest accepted nesting of containers and objects (default 1000, above
    /// the 999 levels of tuples CPython's `pickle.dumps` writes at its default
    /// recursion limit): a list of lists has depth 2.
    ///
    /// The decoder itself never recurses, but dropping, comparing or encoding a
    /// [`Value`] does, once per level (tested at 1000 levels on a 256 KiB
    /// stack): keep this in the thousands at most.
    pub max_depth: usize,
    /// Budget for the memory the decoder builds, in approximate bytes (default 256 MiB,
    /// four times `max_input`). Whatever this says, a payload of `n` bytes is
    /// never given more than [`DECODED_PER_INPUT_BYTE`]` · n + `[`DECODED_BASE`].
    ///
    /// Both the values the stream creates and the values of the result count
    /// their in-memory size (a few dozen bytes each) plus the length of their
    /// text or bytes; stack slots and memo entries count too. A stream that
    /// refers to one memoized container many times is charged for every copy,
    /// so a small "billion laughs" pickle fails here instead of expanding. A
    /// payload of `n` bytes of `bytes` needs about `n` (a value the result
    /// holds once is moved into it, not copied); raise the budget to accept
    /// payloads of many millions of small values.
    pub max_decoded: usize,
    /// What to do with instances of classes (default [`ObjectPolicy::Inert`]).
    pub objects: ObjectPolicy,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_input: 64 << 20,
            max_depth: 1000,
            max_decoded: 256 << 20,
            objects: ObjectPolicy::default(),
        }
    }
}

/// What the decoder does with a class-building opcode. It never calls
/// anything, whatever the policy: the choice is only what to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ObjectPolicy {
    /// Every object decodes: well-known classes to typed values, every other
    /// class to an inert [`Object`].
    #[default]
    Inert,
    /// Plain data and the well-known types only; any other class is refused
    /// ([`DecodeError::RefusedGlobal`]).
    WellKnown,
    /// Plain data only, as Python's `json` would carry it: every global but the
    /// constructors of `bytes`, `bytearray`, `set` and `frozenset` is refused.
    Refuse,
}

/// The memory bound's multiple: decoding a payload of `n` bytes never holds
/// more than `DECODED_PER_INPUT_BYTE · n + DECODED_BASE` bytes (measured by
/// `tests/pickle_memory.rs`), whatever [`DecodeLimits::max_decoded`] allows.
///
/// The multiple covers the densest legitimate pickle: a list of one-byte
/// `None`s costs a node, a stack slot and a list slot (each charged twice, for
/// the vectors' growth), bookkeeping and a [`Value`] per input byte (152
/// bytes). A payload of large `bytes`, `str` or numpy arrays costs about its
/// length once (arrays decoded with [`decode_bytes`] are views: nothing). A memo
/// reference (two bytes) that would copy a large value is charged for the copy,
/// so a payload that refers to one 1 MB string 250 times is refused instead of
/// growing to 250 MB.
pub const DECODED_PER_INPUT_BYTE: usize = 160;

/// How much of the budget may go to building values a second time: a memo
/// reference that copies a shared value (a repeated dict key, a string or list
/// referred to twice) is charged against `COPIES_PER_INPUT_BYTE · n +
/// DECODED_BASE` too, so that one 1 MB string referred to 250 times is refused
/// once its copies reach 32 MB, and many small shared keys (what CPython writes
/// for a list of records) fit.
pub const COPIES_PER_INPUT_BYTE: usize = 32;

/// The constant part of the memory bound; see [`DECODED_PER_INPUT_BYTE`].
pub const DECODED_BASE: usize = 64 << 10;

/// The most decimal digits accepted in a protocol 0 `INT`/`LONG`, as CPython's
/// default `sys.get_int_max_str_digits()`: longer ones cost quadratic time.
const MAX_INT_DIGITS: usize = super::value::MAX_DECIMAL_DIGITS;

/// Why a pickle could not be decoded.
///
/// Offsets are byte offsets of the opcode in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is empty.
    #[error("empty input")]
    Empty,
    /// The input is longer than [`DecodeLimits::max_input`].
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    InputTooLarge {
        /// The input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input ended inside an opcode's argument.
    #[error("truncated {opcode} at byte {offset}")]
    Truncated {
        /// The opcode.
        opcode: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// The input ended before `STOP`.
    #[error("input ended at byte {offset} without STOP")]
    MissingStop {
        /// The input length.
        offset: usize,
    },
    /// Bytes follow `STOP`.
    #[error("{count} trailing bytes after STOP at byte {offset}")]
    TrailingBytes {
        /// Where `STOP` is.
        offset: usize,
        /// How many bytes follow it.
        count: usize,
    },
    /// A byte that is no pickle opcode.
    #[error("unknown opcode 0x{byte:02x} at byte {offset}")]
    UnknownOpcode {
        /// The byte.
        byte: u8,
        /// Where it is.
        offset: usize,
    },
    /// An opcode that builds objects or loads code, refused by this data-only decoder.
    #[error("refused opcode {opcode} at byte {offset}")]
    RefusedOpcode {
        /// The opcode.
        opcode: &'static str,
        /// Where it is.
        offset: usize,
    },
    /// A `GLOBAL`/`STACK_GLOBAL` the [`ObjectPolicy`] does not accept.
    #[error("refused global {module}.{name} at byte {offset}")]
    RefusedGlobal {
        /// The module, as named by the stream.
        module: String,
        /// The name.
        name: String,
        /// Where the opcode is.
        offset: usize,
    },
    /// A `PROTO` with an unknown version.
    #[error("unsupported protocol {version} at byte {offset}")]
    UnsupportedProtocol {
        /// The version.
        version: u8,
        /// Where the opcode is.
        offset: usize,
    },
    /// A length field larger than the rest of the input.
    #[error("{opcode} at byte {offset} claims {len} bytes but only {remaining} remain")]
    LengthTooLarge {
        /// The opcode.
        opcode: &'static str,
        /// Where it is.
        offset: usize,
        /// The claimed length.
        len: u64,
        /// The bytes left after the length field.
        remaining: usize,
    },
    /// An opcode found too few values on the stack (or above its `MARK`).
    #[error("stack underflow at {opcode} at byte {offset}")]
    StackUnderflow {
        /// The opcode.
        opcode: &'static str,
        /// Where it is.
        offset: usize,
    },
    /// An opcode that needs a `MARK` found none.
    #[error("{opcode} at byte {offset} without MARK")]
    MissingMark {
        /// The opcode.
        opcode: &'static str,
        /// Where it is.
        offset: usize,
    },
    /// A memo read of an index that was never stored.
    #[error("{opcode} at byte {offset} reads unset memo index {index}")]
    BadMemoIndex {
        /// The opcode.
        opcode: &'static str,
        /// Where it is.
        offset: usize,
        /// The index.
        index: u64,
    },
    /// An opcode applied to a value of the wrong type (`APPEND` to a dict, …).
    #[error("{opcode} at byte {offset} needs {expected}")]
    WrongType {
        /// The opcode.
        opcode: &'static str,
        /// Where it is.
        offset: usize,
        /// What it needed.
        expected: &'static str,
    },
    /// A malformed opcode argument (bad UTF-8, bad escape, odd `SETITEMS`, …).
    #[error("bad {opcode} at byte {offset}: {reason}")]
    BadArgument {
        /// The opcode.
        opcode: &'static str,
        /// Where it is.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// `STOP` with other than exactly one value and no open `MARK` on the stack.
    #[error("STOP at byte {offset} leaves {values} values and {marks} marks on the stack")]
    UnbalancedStop {
        /// Where `STOP` is.
        offset: usize,
        /// Values on the stack.
        values: usize,
        /// Open marks.
        marks: usize,
    },
    /// Under [`ObjectPolicy::Refuse`], a data constructor (such as
    /// `builtins.set`) used as a value instead of called.
    #[error("global {0} used as a value")]
    GlobalAsValue(&'static str),
    /// An object of a class [`ObjectPolicy::WellKnown`] does not accept.
    #[error("refused object of class {module}.{name}")]
    RefusedObject {
        /// The module.
        module: String,
        /// The class name.
        name: String,
    },
    /// Containers nested deeper than [`DecodeLimits::max_depth`].
    #[error("nesting deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The decoded value would exceed [`DecodeLimits::max_decoded`].
    #[error("decoded size exceeds the budget of {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Values shared through the memo would be copied beyond
    /// [`COPIES_PER_INPUT_BYTE`] times the input.
    #[error("shared values would be copied beyond {max} bytes")]
    SharedTooLarge {
        /// The limit.
        max: usize,
    },
    /// A container contains itself.
    #[error("a container contains itself")]
    Cycle,
    /// A dict key or set item Python cannot hash (a `list`, `dict`, `set` or
    /// `bytearray`, possibly inside a tuple or frozenset): CPython's
    /// `pickle.loads` raises `TypeError` on it.
    #[error("unhashable type '{found}' in a {container}")]
    Unhashable {
        /// The Python type of the unhashable part.
        found: &'static str,
        /// Where it is: `"dict key"`, `"set"` or `"frozenset"`.
        container: &'static str,
    },
}

/// Decodes a pickle of any protocol (0–5) into inert data; nothing named by
/// the stream is ever called or looked up.
///
/// Plain data: `None`, `bool`, `int` (any size), `float`, `str` (lone
/// surrogates as [`Value::SurrogateStr`]), `bytes`, `bytearray`, `list`,
/// `tuple`, `dict`, `set`, `frozenset`, with shared references. Every
/// class-building opcode (`GLOBAL`/`STACK_GLOBAL` with `REDUCE`, `NEWOBJ`,
/// `NEWOBJ_EX`, `BUILD`, `INST`, `OBJ`) records an inert [`Object`]; numpy
/// arrays and scalars, `datetime` values, `Decimal`, `complex`, `range` and
/// the `collections` types become typed values. [`DecodeLimits::objects`]
/// can refuse objects instead. Always refused: `PERSID`, `BINPERSID`,
/// `EXT1/2/4` and out-of-band buffers (`NEXT_BUFFER`, `READONLY_BUFFER`), and
/// a container that contains itself.
///
/// Protocol 0–2 `STRING`/`BINSTRING`/`SHORT_BINSTRING` (Python 2 `str`) decode
/// as Python 3's default `encoding='ASCII'` does: to a `str`, refusing non-ASCII.
/// Ints that fit an `i64` are [`Value::Int`], larger ones [`Value::BigInt`];
/// protocol 0 decimal ints may have at most 4300 digits, as in CPython.
/// The stream must end with `STOP` leaving exactly one value on the stack.
///
/// ```
/// use ecci_proto::pickle::{DecodeLimits, ObjectPolicy, Value, decode};
/// // pickle.dumps({'type': 'cmd'}, 2)
/// let v = decode(b"\x80\x02}q\x00X\x04\x00\x00\x00typeq\x01X\x03\x00\x00\x00cmdq\x02s.",
///                &DecodeLimits::default())?;
/// assert_eq!(v, Value::dict([("type", Value::from("cmd"))]));
///
/// // pickle.dumps of a class whose __reduce__ returns (os.system, ('echo pwned',)):
/// // recorded, never called.
/// let evil = b"\x80\x02cposix\nsystem\nX\x0a\x00\x00\x00echo pwned\x85R.";
/// let v = decode(evil, &DecodeLimits::default())?;
/// assert_eq!(v.to_string(), "posix.system('echo pwned')");
/// let refuse = DecodeLimits { objects: ObjectPolicy::Refuse, ..DecodeLimits::default() };
/// let err = decode(evil, &refuse).unwrap_err();
/// assert_eq!(err.to_string(), "refused global posix.system at byte 2");
/// # Ok::<(), ecci_proto::pickle::DecodeError>(())
/// ```
///
/// # Errors
///
/// A [`DecodeError`] saying why the input was refused.
pub fn decode(input: &[u8], limits: &DecodeLimits) -> Result<Value, DecodeError> {
    decode_from(input, None, limits)
}

/// Like [`decode`], from a [`Bytes`] payload: `bytes` data that a numpy array
/// carries verbatim (protocol 3 and up) becomes a view on `input`, not a copy.
///
/// ```
/// use bytes::Bytes;
/// use ecci_proto::pickle::{DecodeLimits, Value, decode_bytes};
/// # let wire = ecci_proto::pickle::encode(&Value::None, Default::default());
/// let payload = Bytes::from(wire);
/// let value = decode_bytes(&payload, &DecodeLimits::default())?;
/// # assert_eq!(value, Value::None);
/// # Ok::<(), ecci_proto::pickle::DecodeError>(())
/// ```
///
/// # Errors
///
/// As [`decode`].
pub fn decode_bytes(input: &Bytes, limits: &DecodeLimits) -> Result<Value, DecodeError> {
    decode_from(input, Some(input), limits)
}

fn decode_from(
    input: &[u8],
    owner: Option<&Bytes>,
    limits: &DecodeLimits,
) -> Result<Value, DecodeError> {
    if input.len() > limits.max_input {
        return Err(DecodeError::InputTooLarge {
            len: input.len(),
            max: limits.max_input,
        });
    }
    if input.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut machine = Machine::new(input, limits);
    machine.owner = owner;
    let root = machine.run()?;
    machine.materialize(root)
}

type NodeId = usize;

/// A value under construction. Containers refer to their items by id, so that
/// every reference to a container sees what is added to it later.
#[derive(Debug)]
enum Node {
    Leaf(Value),
    /// `bytes` (or a `bytearray`) still in the input: `input[start..end]`.
    Slice {
        start: usize,
        end: usize,
        bytearray: bool,
    },
    List(Vec<NodeId>),
    Tuple(Vec<NodeId>),
    Set(Vec<NodeId>),
    FrozenSet(Vec<NodeId>),
    /// Keys and values alternate.
    Dict(Vec<NodeId>),
    /// A data constructor interpreted here.
    Builtin(Callable),
    /// Any other global, by name.
    Global(Box<Global>),
    Object(Box<ObjectNode>),
}

/// An inert object under construction; see [`Object`].
#[derive(Debug)]
struct ObjectNode {
    class: Global,
    construct: Construct,
    args: Vec<NodeId>,
    /// Keys and values alternate.
    kwargs: Vec<NodeId>,
    state: Option<NodeId>,
    items: Vec<NodeId>,
    /// Keys and values alternate.
    dict_items: Vec<NodeId>,
}

impl ObjectNode {
    fn len(&self) -> usize {
        self.args.len()
            + self.kwargs.len()
            + usize::from(self.state.is_some())
            + self.items.len()
            + self.dict_items.len()
    }

    /// The `i`-th child, in the order of [`Value::child`].
    fn child(&self, i: usize) -> Option<NodeId> {
        let state: &[NodeId] = self.state.as_slice();
        [
            &self.args[..],
            &self.kwargs,
            state,
            &self.items,
            &self.dict_items,
        ]
        .into_iter()
        .flatten()
        .nth(i)
        .copied()
    }
}

/// The only callables a stream may name: constructors of plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callable {
    CodecsEncode,
    Bytes,
    ByteArray,
    Set,
    FrozenSet,
}

impl Callable {
    fn lookup(module: &str, name: &str) -> Option<Self> {
        match (module, name) {
            ("_codecs", "encode") => Some(Callable::CodecsEncode),
            ("builtins" | "__builtin__", "bytes") => Some(Callable::Bytes),
            ("builtins" | "__builtin__", "bytearray") => Some(Callable::ByteArray),
            ("builtins" | "__builtin__", "set") => Some(Callable::Set),
            ("builtins" | "__builtin__", "frozenset") => Some(Callable::FrozenSet),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Callable::CodecsEncode => "_codecs.encode",
            Callable::Bytes => "builtins.bytes",
            Callable::ByteArray => "builtins.bytearray",
            Callable::Set => "builtins.set",
            Callable::FrozenSet => "builtins.frozenset",
        }
    }
}

/// The container kind an `APPEND`-like opcode adds to.
#[derive(Clone, Copy)]
enum Target {
    List,
    Dict,
    Set,
}

/// What every value costs against [`DecodeLimits::max_decoded`], besides its payload.
const VALUE_COST: usize = size_of::<Value>();

/// Most nodes (and stack slots) reserved before decoding; more grow as usual.
const PRESIZED_NODES: usize = 64;

/// What [`Machine::materialize`] keeps per node: path counts, in-degrees and flags.
const PER_NODE_BOOKKEEPING: usize = 8;

struct Machine<'a> {
    input: &'a [u8],
    /// The input as [`Bytes`], when the caller has it, for zero-copy views.
    owner: Option<&'a Bytes>,
    pos: usize,
    limits: &'a DecodeLimits,
    budget: Budget,
    nodes: Vec<Node>,
    stack: Vec<NodeId>,
    /// Stack lengths at each open `MARK`; nothing below the innermost may be popped.
    marks: Vec<usize>,
    memo: Memo,
    /// Whether a node id was pushed a second time (`DUP`, a memo read): only then can a
    /// node be reached through more than one path.
    shared: bool,
}

/// The memo, charged to the budget for the memory it really takes.
///
/// CPython numbers memo entries 0, 1, 2, … (`MEMOIZE` takes the number of
/// entries as its index), so dense indices live in a vector of node ids; an
/// index far beyond its end (only a hand-made stream writes one) goes to a map
/// instead, so that `LONG_BINPUT 4000000000` cannot make the vector huge.
#[derive(Default)]
struct Memo {
    /// Node ids by index; [`Memo::EMPTY`] where nothing was stored.
    dense: Vec<u32>,
    sparse: HashMap<u64, NodeId>,
    /// The number of indices stored, the index `MEMOIZE` writes next.
    len: usize,
}

impl Memo {
    const EMPTY: u32 = u32::MAX;
    /// How far past the vector's end an index may be and still grow it.
    const MAX_GAP: u64 = 1024;
    /// What a new map entry costs: a 16-byte slot and a control byte, at a
    /// load factor down to 7/16 just after the table doubles.
    const SPARSE_ENTRY_COST: usize = 40;

    fn put(&mut self, index: u64, id: NodeId, budget: &mut Budget) -> Result<(), DecodeError> {
        let Some(id) = u32::try_from(id).ok().filter(|&id| id != Self::EMPTY) else {
            return Err(DecodeError::TooLarge { max: budget.max });
        };
        if let Some(slot) = self.sparse.get_mut(&index) {
            *slot = id as NodeId;
            return Ok(());
        }
        let dense_len = self.dense.len() as u64;
        if index >= dense_len.saturating_add(Self::MAX_GAP) {
            budget.charge(Self::SPARSE_ENTRY_COST)?;
            self.sparse.insert(index, id as NodeId);
            self.len += 1;
            return Ok(());
        }
        let Ok(i) = usize::try_from(index) else {
            return Err(DecodeError::TooLarge { max: budget.max });
        };
        if i >= self.dense.len() {
            let new_len = i + 1;
            let capacity = self.dense.capacity();
            if new_len > capacity {
                // Grow geometrically, as Vec would, but charge before allocating.
                let new_capacity = new_len.max(capacity.saturating_mul(2)).max(64);
                budget.charge((new_capacity - capacity) * size_of::<u32>())?;
                self.dense.reserve_exact(new_capacity - self.dense.len());
            }
            self.dense.resize(new_len, Self::EMPTY);
        }
        if let Some(slot) = self.dense.get_mut(i) {
            if *slot == Self::EMPTY {
                self.len += 1;
            }
            *slot = id;
        }
        Ok(())
    }

    fn get(&self, index: u64) -> Option<NodeId> {
        let dense = usize::try_from(index)
            .ok()
            .and_then(|i| self.dense.get(i))
            .filter(|&&id| id != Self::EMPTY);
        match dense {
            Some(&id) => Some(id as NodeId),
            None => self.sparse.get(&index).copied(),
        }
    }

    /// The heap memory the memo holds, in bytes (for tests of the charges).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.dense.capacity() * size_of::<u32>()
            // hashbrown: a slot and a control byte per bucket, buckets = capacity * 8 / 7.
            + self.sparse.capacity() * 8 / 7 * (size_of::<(u64, NodeId)>() + 1)
    }
}

/// What is left of [`DecodeLimits::max_decoded`].
struct Budget {
    left: usize,
    max: usize,
    /// What is left for building values a second time (shared through the memo).
    copies_left: usize,
    copies_max: usize,
}

impl Budget {
    fn new(max: usize, copies_max: usize) -> Self {
        Self {
            left: max,
            max,
            copies_left: copies_max,
            copies_max,
        }
    }

    fn charge(&mut self, cost: usize) -> Result<(), DecodeError> {
        self.left = self
            .left
            .checked_sub(cost)
            .ok_or(DecodeError::TooLarge { max: self.max })?;
        Ok(())
    }

    /// Charges a copy of a shared value, to both budgets.
    fn charge_copy(&mut self, cost: usize) -> Result<(), DecodeError> {
        self.copies_left =
            self.copies_left
                .checked_sub(cost)
                .ok_or(DecodeError::SharedTooLarge {
                    max: self.copies_max,
                })?;
        self.charge(cost)
    }
}

/// The opcode being executed, for error messages.
#[derive(Clone, Copy)]
struct At {
    opcode: &'static str,
    offset: usize,
}

impl At {
    fn truncated(self) -> DecodeError {
        DecodeError::Truncated {
            opcode: self.opcode,
            offset: self.offset,
        }
    }

    fn underflow(self) -> DecodeError {
        DecodeError::StackUnderflow {
            opcode: self.opcode,
            offset: self.offset,
        }
    }

    fn bad(self, reason: &'static str) -> DecodeError {
        DecodeError::BadArgument {
            opcode: self.opcode,
            offset: self.offset,
            reason,
        }
    }

    fn wrong_type(self, expected: &'static str) -> DecodeError {
        DecodeError::WrongType {
            opcode: self.opcode,
            offset: self.offset,
            expected,
        }
    }
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8], limits: &'a DecodeLimits) -> Self {
        let max = limits.max_decoded.min(
            input
                .len()
                .saturating_mul(DECODED_PER_INPUT_BYTE)
                .saturating_add(DECODED_BASE),
        );
        Machine {
            input,
            owner: None,
            pos: 0,
            limits,
            budget: Budget::new(
                max,
                input
                    .len()
                    .saturating_mul(COPIES_PER_INPUT_BYTE)
                    .saturating_add(DECODED_BASE)
                    .min(max),
            ),
            // Sized for a small message at once (an opcode takes a byte or more, a node
            // several), rather than grown from empty for each: a constant at most.
            nodes: Vec::with_capacity((input.len() / 8).min(PRESIZED_NODES)),
            stack: Vec::with_capacity((input.len() / 8).min(PRESIZED_NODES)),
            marks: Vec::new(),
            memo: Memo::default(),
            shared: false,
        }
    }

    /// Runs the stream to `STOP` and returns the id of the resulting value.
    fn run(&mut self) -> Result<NodeId, DecodeError> {
        loop {
            let offset = self.pos;
            let Some(&byte) = self.input.get(offset) else {
                return Err(DecodeError::MissingStop { offset });
            };
            self.pos += 1;
            let Some(opcode) = op::name(byte) else {
                return Err(DecodeError::UnknownOpcode { byte, offset });
            };
            let at = At { opcode, offset };
            if byte == op::STOP {
                return self.stop(at);
            }
            self.step(byte, at)?;
        }
    }

    fn stop(&mut self, at: At) -> Result<NodeId, DecodeError> {
        let trailing = self.input.len() - self.pos;
        if trailing > 0 {
            return Err(DecodeError::TrailingBytes {
                offset: at.offset,
                count: trailing,
            });
        }
        match (self.stack.as_slice(), self.marks.len()) {
            (&[root], 0) => Ok(root),
            ([], 0) => Err(at.underflow()),
            (values, marks) => Err(DecodeError::UnbalancedStop {
                offset: at.offset,
                values: values.len(),
                marks,
            }),
        }
    }

    fn step(&mut self, byte: u8, at: At) -> Result<(), DecodeError> {
        match byte {
            op::PROTO => {
                let version = self.read_u8(at)?;
                if version > 5 {
                    return Err(DecodeError::UnsupportedProtocol {
                        version,
                        offset: at.offset,
                    });
                }
            }
            op::FRAME => {
                // Frames only help buffered readers; the length must still be sane.
                let len = self.read_u64(at)?;
                self.check_len(len, at)?;
            }

            // Stack and marks.
            op::MARK => {
                if self.marks.len() >= self.limits.max_depth.saturating_add(1) {
                    return Err(DecodeError::TooDeep {
                        max: self.limits.max_depth,
                    });
                }
                self.marks.push(self.stack.len());
            }
            op::POP => {
                if self.stack.len() > self.mark_floor() {
                    self.stack.pop();
                } else if self.stack.len() == self.mark_floor() && self.marks.pop().is_some() {
                    // CPython's POP with nothing above a MARK discards the MARK.
                } else {
                    return Err(at.underflow());
                }
            }
            op::POP_MARK => {
                self.pop_mark(at)?;
            }
            op::DUP => {
                let top = self.peek(at)?;
                self.budget.charge(2 * size_of::<NodeId>())?;
                self.shared = true;
                self.stack.push(top);
            }

            // Memo.
            op::PUT => {
                let index = self.read_decimal_index(at)?;
                self.memo_put(index, at)?;
            }
            op::BINPUT => {
                let index = self.read_u8(at)?;
                self.memo_put(index.into(), at)?;
            }
            op::LONG_BINPUT => {
                let index = self.read_u32(at)?;
                self.memo_put(index.into(), at)?;
            }
            op::MEMOIZE => {
                let index = self.memo.len as u64;
                self.memo_put(index, at)?;
            }
            op::GET => {
                let index = self.read_decimal_index(at)?;
                self.memo_get(index, at)?;
            }
            op::BINGET => {
                let index = self.read_u8(at)?;
                self.memo_get(index.into(), at)?;
            }
            op::LONG_BINGET => {
                let index = self.read_u32(at)?;
                self.memo_get(index.into(), at)?;
            }

            // Scalars.
            op::NONE => self.push_leaf(Value::None, 0)?,
            op::NEWTRUE => self.push_leaf(Value::Bool(true), 0)?,
            op::NEWFALSE => self.push_leaf(Value::Bool(false), 0)?,
            op::BININT => {
                let i = i32::from_le_bytes(self.read_array(at)?);
                self.push_leaf(Value::Int(i.into()), 0)?;
            }
            op::BININT1 => {
                let i = self.read_u8(at)?;
                self.push_leaf(Value::Int(i.into()), 0)?;
            }
            op::BININT2 => {
                let i = u16::from_le_bytes(self.read_array(at)?);
                self.push_leaf(Value::Int(i.into()), 0)?;
            }
            op::INT => {
                let line = self.read_line(at)?;
                let value = match line {
                    b"00" => Value::Bool(false),
                    b"01" => Value::Bool(true),
                    _ => parse_decimal_int(line).map_err(|reason| at.bad(reason))?,
                };
                self.push_leaf(value, 0)?;
            }
            op::LONG => {
                let line = self.read_line(at)?;
                let digits = line.strip_suffix(b"L").unwrap_or(line);
                let value = parse_decimal_int(digits).map_err(|reason| at.bad(reason))?;
                self.push_leaf(value, 0)?;
            }
            op::LONG1 => {
                let len = self.read_u8(at)?;
                let bytes = self.read_bytes(len.into(), at)?;
                self.push_leaf(int_from_le(bytes), bytes.len())?;
            }
            op::LONG4 => {
                let len = i32::from_le_bytes(self.read_array(at)?);
                let len = u64::try_from(len).map_err(|_| at.bad("negative length"))?;
                let bytes = self.read_bytes(len, at)?;
                self.push_leaf(int_from_le(bytes), bytes.len())?;
            }
            op::BINFLOAT => {
                let f = f64::from_be_bytes(self.read_array(at)?);
                self.push_leaf(Value::Float(f), 0)?;
            }
            op::FLOAT => {
                let line = self.read_line(at)?;
                let f = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .ok_or_else(|| at.bad("not a float"))?;
                self.push_leaf(Value::Float(f), 0)?;
            }

            // Text and bytes.
            op::STRING => {
                let line = self.read_line(at)?;
                let quoted = match line {
                    [b'\'', inner @ .., b'\''] | [b'"', inner @ .., b'"'] => inner,
                    _ => return Err(at.bad("argument not quoted")),
                };
                let bytes = escape_decode(quoted).map_err(|reason| at.bad(reason))?;
                self.push_ascii(bytes, at)?;
            }
            op::BINSTRING => {
                let len = i32::from_le_bytes(self.read_array(at)?);
                let len = u64::try_from(len).map_err(|_| at.bad("negative length"))?;
                let bytes = self.read_bytes(len, at)?.to_vec();
                self.push_ascii(bytes, at)?;
            }
            op::SHORT_BINSTRING => {
                let len = self.read_u8(at)?;
                let bytes = self.read_bytes(len.into(), at)?.to_vec();
                self.push_ascii(bytes, at)?;
            }
            op::UNICODE => {
                let line = self.read_line(at)?;
                let s = raw_unicode_escape_decode(line).map_err(|reason| at.bad(reason))?;
                self.push_text(s)?;
            }
            op::SHORT_BINUNICODE => {
                let len = self.read_u8(at)?;
                self.read_utf8(len.into(), at)?;
            }
            op::BINUNICODE => {
                let len = self.read_u32(at)?;
                self.read_utf8(len.into(), at)?;
            }
            op::BINUNICODE8 => {
                let len = self.read_u64(at)?;
                self.read_utf8(len, at)?;
            }
            op::SHORT_BINBYTES => {
                let len = self.read_u8(at)?;
                self.push_slice(len.into(), false, at)?;
            }
            op::BINBYTES => {
                let len = self.read_u32(at)?;
                self.push_slice(len.into(), false, at)?;
            }
            op::BINBYTES8 => {
                let len = self.read_u64(at)?;
                self.push_slice(len, false, at)?;
            }
            op::BYTEARRAY8 => {
                let len = self.read_u64(at)?;
                self.push_slice(len, true, at)?;
            }

            // Containers.
            op::EMPTY_LIST => self.push_node(Node::List(Vec::new()))?,
            op::EMPTY_TUPLE => self.push_node(Node::Tuple(Vec::new()))?,
            op::EMPTY_DICT => self.push_node(Node::Dict(Vec::new()))?,
            op::EMPTY_SET => self.push_node(Node::Set(Vec::new()))?,
            op::LIST => {
                let items = self.pop_mark(at)?;
                self.push_node(Node::List(items))?;
            }
            op::TUPLE => {
                let items = self.pop_mark(at)?;
                self.push_node(Node::Tuple(items))?;
            }
            op::DICT => {
                let items = self.pop_mark(at)?;
                if items.len() % 2 != 0 {
                    return Err(at.bad("odd number of items"));
                }
                self.push_node(Node::Dict(items))?;
            }
            op::FROZENSET => {
                let items = self.pop_mark(at)?;
                self.push_node(Node::FrozenSet(items))?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(byte - op::TUPLE1) + 1;
                let start = self
                    .stack
                    .len()
                    .checked_sub(n)
                    .filter(|&start| start >= self.mark_floor())
                    .ok_or_else(|| at.underflow())?;
                let items = self.stack.split_off(start);
                self.push_node(Node::Tuple(items))?;
            }
            op::APPEND => {
                let item = self.pop(at)?;
                self.extend(at, Target::List, vec![item])?;
            }
            op::APPENDS => {
                let items = self.pop_mark(at)?;
                self.extend(at, Target::List, items)?;
            }
            op::ADDITEMS => {
                let items = self.pop_mark(at)?;
                self.extend(at, Target::Set, items)?;
            }
            op::SETITEM => {
                let value = self.pop(at)?;
                let key = self.pop(at)?;
                self.extend(at, Target::Dict, vec![key, value])?;
            }
            op::SETITEMS => {
                let items = self.pop_mark(at)?;
                if items.len() % 2 != 0 {
                    return Err(at.bad("odd number of items"));
                }
                self.extend(at, Target::Dict, items)?;
            }

            // Globals and objects: named, recorded, never called.
            op::GLOBAL => {
                let module = self.read_line(at)?;
                let name = self.read_line(at)?;
                let (module, name) = (
                    String::from_utf8_lossy(module),
                    String::from_utf8_lossy(name),
                );
                self.push_global(&module, &name, at)?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop(at)?;
                let module = self.pop(at)?;
                let (Node::Leaf(Value::Str(module)), Node::Leaf(Value::Str(name))) =
                    (&self.nodes[module], &self.nodes[name])
                else {
                    return Err(at.wrong_type("two str"));
                };
                let (module, name) = (module.clone(), name.clone());
                self.push_global(&module, &name, at)?;
            }
            op::REDUCE => self.reduce(at)?,
            op::BUILD => {
                self.allow_objects(at)?;
                let state = self.pop(at)?;
                let target = self.peek(at)?;
                let Node::Object(obj) = &mut self.nodes[target] else {
                    return Err(at.wrong_type("an object"));
                };
                if obj.state.replace(state).is_some() {
                    return Err(at.bad("a second BUILD on one object"));
                }
                self.budget.charge(size_of::<NodeId>())?;
            }
            op::NEWOBJ => {
                let args = self.pop(at)?;
                let class = self.pop(at)?;
                let args = self.tuple_items(args, at)?;
                self.push_object(class, Construct::New, args, Vec::new(), at)?;
            }
            op::NEWOBJ_EX => {
                let kwargs = self.pop(at)?;
                let args = self.pop(at)?;
                let class = self.pop(at)?;
                let args = self.tuple_items(args, at)?;
                let Node::Dict(kwargs) = &self.nodes[kwargs] else {
                    return Err(at.wrong_type("a keyword dict"));
                };
                let kwargs = kwargs.clone();
                self.push_object(class, Construct::New, args, kwargs, at)?;
            }
            op::INST => {
                let module = self.read_line(at)?;
                let name = self.read_line(at)?;
                let (module, name) = (
                    String::from_utf8_lossy(module).into_owned(),
                    String::from_utf8_lossy(name).into_owned(),
                );
                let args = self.pop_mark(at)?;
                self.push_global(&module, &name, at)?;
                let class = self.pop(at)?;
                self.push_object(class, Construct::Call, args, Vec::new(), at)?;
            }
            op::OBJ => {
                let mut args = self.pop_mark(at)?;
                if args.is_empty() {
                    return Err(at.underflow());
                }
                let class = args.remove(0);
                self.push_object(class, Construct::Call, args, Vec::new(), at)?;
            }

            _ => {
                return Err(DecodeError::RefusedOpcode {
                    opcode: at.opcode,
                    offset: at.offset,
                });
            }
        }
        Ok(())
    }

    // Reading arguments. Every length is checked against the rest of the input
    // before anything is allocated.

    fn read_bytes(&mut self, len: u64, at: At) -> Result<&'a [u8], DecodeError> {
        let len = self.check_len(len, at)?;
        let input: &'a [u8] = self.input;
        let start = self.pos;
        self.pos += len;
        input.get(start..self.pos).ok_or_else(|| at.truncated())
    }

    fn check_len(&self, len: u64, at: At) -> Result<usize, DecodeError> {
        let remaining = self.input.len().saturating_sub(self.pos);
        match usize::try_from(len) {
            Ok(len) if len <= remaining => Ok(len),
            _ => Err(DecodeError::LengthTooLarge {
                opcode: at.opcode,
                offset: at.offset,
                len,
                remaining,
            }),
        }
    }

    fn read_array<const N: usize>(&mut self, at: At) -> Result<[u8; N], DecodeError> {
        let bytes = self
            .input
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
            .ok_or_else(|| at.truncated())?;
        self.pos += N;
        Ok(*bytes)
    }

    fn read_u8(&mut self, at: At) -> Result<u8, DecodeError> {
        let [b] = self.read_array(at)?;
        Ok(b)
    }

    fn read_u32(&mut self, at: At) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.read_array(at)?))
    }

    fn read_u64(&mut self, at: At) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.read_array(at)?))
    }

    /// A `\n`-terminated argument of the text protocol, without the `\n`.
    fn read_line(&mut self, at: At) -> Result<&'a [u8], DecodeError> {
        let input: &'a [u8] = self.input;
        let rest = input.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| at.truncated())?;
        self.pos += len + 1;
        Ok(rest.get(..len).unwrap_or_default())
    }

    fn read_decimal_index(&mut self, at: At) -> Result<u64, DecodeError> {
        let line = self.read_line(at)?;
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| at.bad("not a memo index"))
    }

    /// UTF-8 text; lone surrogates (Python's `surrogatepass`) make a
    /// [`Value::SurrogateStr`].
    fn read_utf8(&mut self, len: u64, at: At) -> Result<(), DecodeError> {
        let bytes = self.read_bytes(len, at)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => self.push_str(s.to_owned()),
            Err(_) if py::is_wtf8(bytes) => {
                let bytes = bytes.to_vec();
                let len = bytes.len();
                self.push_leaf(Value::SurrogateStr(bytes), len)
            }
            Err(_) => Err(at.bad("invalid utf-8")),
        }
    }

    /// Text from a protocol 0 `UNICODE`, possibly with lone surrogates.
    fn push_text(&mut self, wtf8: Vec<u8>) -> Result<(), DecodeError> {
        match String::from_utf8(wtf8) {
            Ok(s) => self.push_str(s),
            Err(e) => {
                let bytes = e.into_bytes();
                let len = bytes.len();
                self.push_leaf(Value::SurrogateStr(bytes), len)
            }
        }
    }

    /// `bytes` or a `bytearray` of `len` bytes, left in the input until the result is built.
    fn push_slice(&mut self, len: u64, bytearray: bool, at: At) -> Result<(), DecodeError> {
        let start = self.pos;
        let end = start + self.read_bytes(len, at)?.len();
        self.push_node(Node::Slice {
            start,
            end,
            bytearray,
        })
    }

    /// The bytes of a `bytes`/`bytearray` node.
    fn bytes_of(&self, id: NodeId) -> Option<&[u8]> {
        match &self.nodes[id] {
            Node::Slice { start, end, .. } => self.input.get(*start..*end),
            Node::Leaf(Value::Bytes(b) | Value::ByteArray(b)) => Some(b),
            _ => None,
        }
    }

    /// The items of an argument tuple.
    fn tuple_items(&self, id: NodeId, at: At) -> Result<Vec<NodeId>, DecodeError> {
        match &self.nodes[id] {
            Node::Tuple(items) => Ok(items.clone()),
            _ => Err(at.wrong_type("an argument tuple")),
        }
    }

    /// Refuses the class-building opcode at `at` under [`ObjectPolicy::Refuse`].
    fn allow_objects(&self, at: At) -> Result<(), DecodeError> {
        match self.limits.objects {
            ObjectPolicy::Refuse => Err(DecodeError::RefusedOpcode {
                opcode: at.opcode,
                offset: at.offset,
            }),
            ObjectPolicy::Inert | ObjectPolicy::WellKnown => Ok(()),
        }
    }

    /// An inert object of class `class` (a global node).
    fn push_object(
        &mut self,
        class: NodeId,
        construct: Construct,
        args: Vec<NodeId>,
        kwargs: Vec<NodeId>,
        at: At,
    ) -> Result<(), DecodeError> {
        self.allow_objects(at)?;
        let class = match &self.nodes[class] {
            Node::Global(g) => (**g).clone(),
            Node::Builtin(c) => {
                let (module, name) = c.name().split_once('.').unwrap_or(("builtins", c.name()));
                Global::new(module, name)
            }
            _ => return Err(at.wrong_type("a class")),
        };
        self.budget.charge(
            size_of::<ObjectNode>()
                + class.module.len()
                + class.name.len()
                + (args.len() + kwargs.len()) * size_of::<NodeId>(),
        )?;
        self.push_node(Node::Object(Box::new(ObjectNode {
            class,
            construct,
            args,
            kwargs,
            state: None,
            items: Vec::new(),
            dict_items: Vec::new(),
        })))
    }

    // The stack.

    fn mark_floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self, at: At) -> Result<NodeId, DecodeError> {
        if self.stack.len() > self.mark_floor() {
            self.stack.pop().ok_or_else(|| at.underflow())
        } else {
            Err(at.underflow())
        }
    }

    fn peek(&self, at: At) -> Result<NodeId, DecodeError> {
        if self.stack.len() > self.mark_floor() {
            self.stack.last().copied().ok_or_else(|| at.underflow())
        } else {
            Err(at.underflow())
        }
    }

    /// Pops everything above the innermost `MARK`, and the `MARK`.
    fn pop_mark(&mut self, at: At) -> Result<Vec<NodeId>, DecodeError> {
        let mark = self.marks.pop().ok_or(DecodeError::MissingMark {
            opcode: at.opcode,
            offset: at.offset,
        })?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn push_node(&mut self, node: Node) -> Result<(), DecodeError> {
        // The node and its stack slot, twice (a growing vector may hold twice
        // its length), and what building the result keeps per node.
        self.budget
            .charge(2 * (size_of::<Node>() + size_of::<NodeId>()) + PER_NODE_BOOKKEEPING)?;
        self.stack.push(self.nodes.len());
        self.nodes.push(node);
        Ok(())
    }

    fn push_leaf(&mut self, value: Value, payload: usize) -> Result<(), DecodeError> {
        self.budget.charge(payload)?;
        self.push_node(Node::Leaf(value))
    }

    fn push_str(&mut self, s: String) -> Result<(), DecodeError> {
        let len = s.len();
        self.push_leaf(Value::Str(s), len)
    }

    /// Python 2 `str` as Python 3 loads it by default: ASCII text.
    fn push_ascii(&mut self, bytes: Vec<u8>, at: At) -> Result<(), DecodeError> {
        if !bytes.is_ascii() {
            return Err(at.bad("non-ascii string (python 2 str)"));
        }
        let s = String::from_utf8(bytes).map_err(|_| at.bad("non-ascii string"))?;
        self.push_str(s)
    }

    fn memo_put(&mut self, index: u64, at: At) -> Result<(), DecodeError> {
        let top = self.peek(at)?;
        self.memo.put(index, top, &mut self.budget)
    }

    fn memo_get(&mut self, index: u64, at: At) -> Result<(), DecodeError> {
        let id = self.memo.get(index).ok_or(DecodeError::BadMemoIndex {
            opcode: at.opcode,
            offset: at.offset,
            index,
        })?;
        self.budget.charge(2 * size_of::<NodeId>())?;
        self.shared = true;
        self.stack.push(id);
        Ok(())
    }

    /// `APPEND(S)`, `SETITEM(S)` and `ADDITEMS`: adds `items` to the container below them.
    fn extend(&mut self, at: At, into: Target, items: Vec<NodeId>) -> Result<(), DecodeError> {
        let target = self.peek(at)?;
        // Twice: the container's vector may grow to twice its length.
        self.budget.charge(2 * items.len() * size_of::<NodeId>())?;
        match (&mut self.nodes[target], into) {
            (Node::List(existing), Target::List)
            | (Node::Dict(existing), Target::Dict)
            | (Node::Set(existing), Target::Set) => {
                existing.extend(items);
                Ok(())
            }
            // CPython calls the object's `extend`/`append`, `__setitem__` or `add`:
            // recorded instead.
            (Node::Object(obj), Target::List | Target::Set) => {
                obj.items.extend(items);
                Ok(())
            }
            (Node::Object(obj), Target::Dict) => {
                obj.dict_items.extend(items);
                Ok(())
            }
            (_, Target::List) => Err(at.wrong_type("a list")),
            (_, Target::Dict) => Err(at.wrong_type("a dict")),
            (_, Target::Set) => Err(at.wrong_type("a set")),
        }
    }

    fn push_global(&mut self, module: &str, name: &str, at: At) -> Result<(), DecodeError> {
        if let Some(callable) = Callable::lookup(module, name) {
            return self.push_node(Node::Builtin(callable));
        }
        let refused = match self.limits.objects {
            ObjectPolicy::Inert => false,
            ObjectPolicy::WellKnown => !py::is_well_known_global(module, name),
            ObjectPolicy::Refuse => true,
        };
        if refused {
            return Err(DecodeError::RefusedGlobal {
                module: shorten(module),
                name: shorten(name),
                offset: at.offset,
            });
        }
        self.budget
            .charge(size_of::<Global>() + module.len() + name.len())?;
        self.push_node(Node::Global(Box::new(Global::new(module, name))))
    }

    /// `REDUCE`: a data constructor interpreted here, or an inert object.
    fn reduce(&mut self, at: At) -> Result<(), DecodeError> {
        let args = self.pop(at)?;
        let callable = self.pop(at)?;
        let callable = match &self.nodes[callable] {
            Node::Builtin(c) => *c,
            Node::Global(_) => {
                let args = self.tuple_items(args, at)?;
                return self.push_object(callable, Construct::Call, args, Vec::new(), at);
            }
            _ => return Err(at.wrong_type("a global")),
        };
        let Node::Tuple(arg_ids) = &self.nodes[args] else {
            return Err(at.wrong_type("an argument tuple"));
        };
        let leaf = |id: NodeId| self.bytes_of(id).map(<[u8]>::to_vec);
        let args: Vec<&Node> = arg_ids.iter().map(|&id| &self.nodes[id]).collect();
        let node = match (callable, args.as_slice()) {
            (Callable::CodecsEncode, [Node::Leaf(Value::Str(s)), Node::Leaf(Value::Str(enc))]) => {
                Node::Leaf(Value::Bytes(
                    latin1(s, enc).ok_or_else(|| at.bad("_codecs.encode arguments"))?,
                ))
            }
            (Callable::Bytes, []) => Node::Leaf(Value::Bytes(Vec::new())),
            (Callable::ByteArray, []) => Node::Leaf(Value::ByteArray(Vec::new())),
            (Callable::Bytes, [_]) => Node::Leaf(Value::Bytes(
                leaf(arg_ids[0]).ok_or_else(|| at.bad("bytes argument"))?,
            )),
            (Callable::ByteArray, [_]) => Node::Leaf(Value::ByteArray(
                leaf(arg_ids[0]).ok_or_else(|| at.bad("bytearray argument"))?,
            )),
            // Python 2's bytearray.__reduce__: bytearray(u'…', 'latin-1').
            (Callable::ByteArray, [Node::Leaf(Value::Str(s)), Node::Leaf(Value::Str(enc))]) => {
                Node::Leaf(Value::ByteArray(
                    latin1(s, enc).ok_or_else(|| at.bad("bytearray arguments"))?,
                ))
            }
            (Callable::Set, []) => Node::Set(Vec::new()),
            (Callable::FrozenSet, []) => Node::FrozenSet(Vec::new()),
            (Callable::Set, [Node::List(items) | Node::Tuple(items)]) => Node::Set(items.clone()),
            (Callable::FrozenSet, [Node::List(items) | Node::Tuple(items)]) => {
                Node::FrozenSet(items.clone())
            }
            _ => return Err(at.bad("arguments not accepted for this constructor")),
        };
        let payload = match &node {
            Node::Leaf(Value::Bytes(b) | Value::ByteArray(b)) => b.len(),
            Node::Set(items) | Node::FrozenSet(items) => items.len() * size_of::<NodeId>(),
            _ => 0,
        };
        self.budget.charge(payload)?;
        self.push_node(node)
    }

    /// Builds the result tree without recursion, charging every value to the
    /// budget: a container reached through several references is built (and
    /// charged) once per reference. A leaf the result holds once is moved
    /// into it; only shared leaves are cloned. Dict keys and set items must be
    /// hashable, as CPython's `pickle.loads` requires. Objects of well-known
    /// classes become typed values as they are finished.
    fn materialize(mut self, root: NodeId) -> Result<Value, DecodeError> {
        // Every other opcode pushes a new node, and a node leaves the stack into at most
        // one container: without `DUP` or a memo read, every node is reached at most once,
        // and the path counting (several vectors and two walks) is not needed.
        let single_use = if self.shared {
            single_use_leaves(&self.nodes, root)
        } else {
            vec![true; self.nodes.len()]
        };
        let owner = self.owner;
        let mut builder = Builder {
            on_path: vec![false; self.nodes.len()],
            nodes: &mut self.nodes,
            input: self.input,
            owner,
            budget: &mut self.budget,
            max_depth: self.limits.max_depth,
            policy: self.limits.objects,
            built: vec![false; single_use.len()],
            single_use,
        };
        let mut frame = match builder.enter(root, 0)? {
            Entered::Value(value) => return Ok(value),
            Entered::Container(frame) => frame,
        };
        let mut parents: Vec<Frame> = Vec::new();
        loop {
            let next = child(&builder.nodes[frame.id], frame.items.len());
            if let Some(child) = next {
                match builder.enter(child, parents.len() + 1)? {
                    Entered::Value(value) => {
                        let unhashable = value.unhashable_part();
                        frame.push(value, unhashable)?;
                    }
                    Entered::Container(inner) => parents.push(std::mem::replace(&mut frame, inner)),
                }
                continue;
            }
            builder.on_path[frame.id] = false;
            let (value, unhashable) = builder.finish(frame)?;
            match parents.pop() {
                Some(parent) => {
                    frame = parent;
                    frame.push(value, unhashable)?;
                }
                None => return Ok(value),
            }
        }
    }
}

/// The `i`-th child of a node (none for a leaf or a global), in the order of
/// [`Value::child`].
fn child(node: &Node, i: usize) -> Option<NodeId> {
    match node {
        Node::List(items)
        | Node::Tuple(items)
        | Node::Set(items)
        | Node::FrozenSet(items)
        | Node::Dict(items) => items.get(i).copied(),
        Node::Object(obj) => obj.child(i),
        Node::Leaf(_) | Node::Slice { .. } | Node::Builtin(_) | Node::Global(_) => None,
    }
}

/// Calls `f` on every child of a node.
fn for_each_child(node: &Node, mut f: impl FnMut(NodeId)) {
    let mut i = 0;
    while let Some(c) = child(node, i) {
        f(c);
        i += 1;
    }
}

/// Which leaves occur exactly once in the tree rooted at `root`, counting
/// every path to them: a leaf referenced once by a container that is itself
/// referenced twice occurs twice.
///
/// Paths are counted (up to "many") in topological order of the graph of
/// containers reachable from `root`; nodes on a cycle are never reached in
/// that order and stay "not single", and [`Machine::materialize`] refuses the
/// cycle anyway.
fn single_use_leaves(nodes: &[Node], root: NodeId) -> Vec<bool> {
    let mut indegree = vec![0u32; nodes.len()];
    let mut reached = vec![false; nodes.len()];
    reached[root] = true;
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        for_each_child(&nodes[id], |child| {
            indegree[child] = indegree[child].saturating_add(1);
            if !reached[child] {
                reached[child] = true;
                todo.push(child);
            }
        });
    }
    // 0, 1, or 2 meaning "more than one".
    let mut paths = vec![0u8; nodes.len()];
    let mut single = vec![false; nodes.len()];
    paths[root] = 1;
    if indegree[root] == 0 {
        todo.push(root);
    }
    while let Some(id) = todo.pop() {
        if let Node::Leaf(_) = nodes[id] {
            single[id] = paths[id] == 1;
        }
        for_each_child(&nodes[id], |child| {
            paths[child] = paths[child].saturating_add(paths[id]).min(2);
            indegree[child] = indegree[child].saturating_sub(1);
            if indegree[child] == 0 {
                todo.push(child);
            }
        });
    }
    single
}

/// The state of [`Machine::materialize`].
struct Builder<'n> {
    nodes: &'n mut [Node],
    input: &'n [u8],
    owner: Option<&'n Bytes>,
    budget: &'n mut Budget,
    max_depth: usize,
    policy: ObjectPolicy,
    /// The containers being built, to tell a cycle from a shared reference.
    on_path: Vec<bool>,
    /// The leaves that may be moved out of `nodes`, from [`single_use_leaves`].
    single_use: Vec<bool>,
    /// The nodes built at least once: building one again is a copy.
    built: Vec<bool>,
}

/// The kinds of container.
#[derive(Clone, Copy)]
enum Kind {
    List,
    Tuple,
    Set,
    FrozenSet,
    Dict,
    Object,
}

/// A container being built: its node and the values built for its children so far.
struct Frame {
    id: NodeId,
    kind: Kind,
    /// Whether this node was built before: its costs are a copy's.
    copy: bool,
    items: Vec<Value>,
    /// The type of the first unhashable item, which makes a tuple unhashable.
    unhashable: Option<&'static str>,
}

impl Frame {
    /// Adds the next child's value, refusing an unhashable dict key or set item.
    fn push(&mut self, value: Value, unhashable: Option<&'static str>) -> Result<(), DecodeError> {
        if let Some(found) = unhashable {
            let container = match self.kind {
                Kind::Dict if self.items.len() % 2 == 0 => Some("dict key"),
                Kind::Set => Some("set"),
                Kind::FrozenSet => Some("frozenset"),
                _ => None,
            };
            if let Some(container) = container {
                return Err(DecodeError::Unhashable { found, container });
            }
            self.unhashable.get_or_insert(found);
        }
        self.items.push(value);
        Ok(())
    }
}

enum Entered {
    Value(Value),
    Container(Frame),
}

/// The decoder's graph as the numpy recognizer reads it.
struct GraphView<'b> {
    nodes: &'b [Node],
    input: &'b [u8],
    owner: Option<&'b Bytes>,
}

impl Graph for GraphView<'_> {
    fn view(&self, id: usize) -> View<'_> {
        match &self.nodes[id] {
            Node::Leaf(Value::Int(i)) => View::Int(*i),
            Node::Leaf(Value::Bool(b)) => View::Bool(*b),
            Node::Leaf(Value::None) => View::None,
            Node::Leaf(Value::Str(s)) => View::Str(s),
            Node::Leaf(Value::Bytes(_) | Value::ByteArray(_)) | Node::Slice { .. } => View::Bytes,
            Node::Tuple(items) => View::Tuple(items),
            Node::Global(g) => View::Global(g),
            Node::Object(obj) => View::Object {
                class: &obj.class,
                args: &obj.args,
                state: obj.state,
                extra: !(obj.kwargs.is_empty()
                    && obj.items.is_empty()
                    && obj.dict_items.is_empty()),
            },
            _ => View::Other,
        }
    }

    fn bytes(&self, id: usize) -> Option<Bytes> {
        match &self.nodes[id] {
            Node::Slice { start, end, .. } => Some(match self.owner {
                Some(owner) => owner.slice(*start..*end),
                None => Bytes::copy_from_slice(self.input.get(*start..*end)?),
            }),
            Node::Leaf(Value::Bytes(b) | Value::ByteArray(b)) => Some(Bytes::copy_from_slice(b)),
            _ => None,
        }
    }
}

impl Builder<'_> {
    /// Starts building node `id`, under `depth` open containers.
    fn enter(&mut self, id: NodeId, depth: usize) -> Result<Entered, DecodeError> {
        let copy = std::mem::replace(&mut self.built[id], true);
        let cost = VALUE_COST
            + match &self.nodes[id] {
                Node::Leaf(value) if !self.single_use[id] => payload_len(value),
                Node::Slice { start, end, .. } => end - start,
                _ => 0,
            };
        if copy {
            self.budget.charge_copy(cost)?;
        } else {
            self.budget.charge(cost)?;
        }
        let (kind, len) = match &mut self.nodes[id] {
            Node::Leaf(value) if self.single_use[id] => {
                // Its payload was charged when the stream created it.
                return Ok(Entered::Value(std::mem::take(value)));
            }
            Node::Leaf(value) => return Ok(Entered::Value(value.clone())),
            Node::Slice {
                start,
                end,
                bytearray,
            } => {
                let bytes = self.input.get(*start..*end).unwrap_or_default();
                let bytes = bytes.to_vec();
                return Ok(Entered::Value(if *bytearray {
                    Value::ByteArray(bytes)
                } else {
                    Value::Bytes(bytes)
                }));
            }
            Node::Builtin(callable) => {
                if self.policy == ObjectPolicy::Refuse {
                    return Err(DecodeError::GlobalAsValue(callable.name()));
                }
                let (module, name) = callable.name().split_once('.').unwrap_or_default();
                return Ok(Entered::Value(Value::Global(Box::new(Global::new(
                    module, name,
                )))));
            }
            Node::Global(g) => {
                let cost = size_of::<Global>() + g.module.len() + g.name.len();
                if copy {
                    self.budget.charge_copy(cost)?;
                } else {
                    self.budget.charge(cost)?;
                }
                return Ok(Entered::Value(Value::Global(g.clone())));
            }
            Node::List(items) => (Kind::List, items.len()),
            Node::Tuple(items) => (Kind::Tuple, items.len()),
            Node::Set(items) => (Kind::Set, items.len()),
            Node::FrozenSet(items) => (Kind::FrozenSet, items.len()),
            Node::Dict(items) => (Kind::Dict, items.len()),
            Node::Object(obj) => (Kind::Object, obj.len()),
        };
        if self.on_path[id] {
            return Err(DecodeError::Cycle);
        }
        if depth >= self.max_depth {
            return Err(DecodeError::TooDeep {
                max: self.max_depth,
            });
        }
        if let Kind::Object = kind {
            let graph = GraphView {
                nodes: self.nodes,
                input: self.input,
                owner: self.owner,
            };
            if let Some(array) = np::array_from_graph(&graph, id) {
                // A view on the input costs nothing more; a copy costs its length.
                if self.owner.is_none() || !self.is_view(array.data()) {
                    let len = array.data().len();
                    if copy {
                        self.budget.charge_copy(len)?;
                    } else {
                        self.budget.charge(len)?;
                    }
                }
                self.budget
                    .charge(size_of::<py::NdArray>() + array.shape().len() * 8)?;
                return Ok(Entered::Value(Value::NdArray(Box::new(array))));
            }
            if let Some(scalar) = np::scalar_from_graph(&graph, id) {
                self.budget.charge(size_of::<py::NumpyScalar>() + 16)?;
                return Ok(Entered::Value(Value::NumpyScalar(Box::new(scalar))));
            }
        }
        self.on_path[id] = true;
        Ok(Entered::Container(Frame {
            id,
            kind,
            copy,
            items: Vec::with_capacity(len),
            unhashable: None,
        }))
    }

    /// Whether `data` lies inside the caller's input buffer.
    fn is_view(&self, data: &Bytes) -> bool {
        let range = self.input.as_ptr_range();
        data.is_empty() || range.contains(&data.as_ptr())
    }

    /// The finished container's value, and the type that makes it unhashable, if any.
    fn finish(&mut self, frame: Frame) -> Result<(Value, Option<&'static str>), DecodeError> {
        Ok(match frame.kind {
            Kind::List => (Value::List(frame.items), Some("list")),
            Kind::Tuple => (Value::Tuple(frame.items), frame.unhashable),
            Kind::Set => (Value::Set(frame.items), Some("set")),
            Kind::FrozenSet => (Value::FrozenSet(frame.items), frame.unhashable),
            Kind::Dict => (dict_from_flat(frame.items), Some("dict")),
            Kind::Object => {
                let Node::Object(node) = &self.nodes[frame.id] else {
                    return Err(DecodeError::Cycle);
                };
                let mut items = frame.items.into_iter();
                let args: Vec<Value> = items.by_ref().take(node.args.len()).collect();
                let kwargs = pairs(items.by_ref().take(node.kwargs.len()));
                let state = node.state.and_then(|_| items.next());
                let list_items: Vec<Value> = items.by_ref().take(node.items.len()).collect();
                let dict_items = pairs(items);
                // The box and the class name, cloned for every copy.
                let cost = size_of::<Object>() + node.class.module.len() + node.class.name.len();
                if frame.copy {
                    self.budget.charge_copy(cost)?;
                } else {
                    self.budget.charge(cost)?;
                }
                let obj = Object {
                    class: node.class.clone(),
                    construct: node.construct,
                    args,
                    kwargs,
                    state,
                    items: list_items,
                    dict_items,
                };
                let value = py::typed(obj);
                if let (Value::Object(obj), ObjectPolicy::WellKnown) = (&value, self.policy) {
                    return Err(DecodeError::RefusedObject {
                        module: shorten(&obj.class.module),
                        name: shorten(&obj.class.name),
                    });
                }
                let unhashable = value.unhashable_part();
                (value, unhashable)
            }
        })
    }
}

/// Pairs from keys and values, alternating.
fn pairs(items: impl Iterator<Item = Value>) -> Vec<(Value, Value)> {
    let mut items = items;
    let mut pairs = Vec::with_capacity(items.size_hint().0 / 2);
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        pairs.push((k, v));
    }
    pairs
}

/// A dict's value from its keys and values, alternating.
fn dict_from_flat(items: Vec<Value>) -> Value {
    Value::Dict(pairs(items.into_iter()))
}

/// A name from the stream, cut to a length fit for an error message.
fn shorten(name: &str) -> String {
    const MAX_CHARS: usize = 100;
    match name.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

fn payload_len(value: &Value) -> usize {
    match value {
        Value::Str(s) => s.len(),
        // A string with lone surrogates is a leaf too: its copies through the memo cost
        // its bytes (the pickle_memory oracle found 655 MB held for 85 KB without this).
        Value::Bytes(b) | Value::ByteArray(b) | Value::SurrogateStr(b) => b.len(),
        Value::BigInt(b) => b.to_le_bytes().len(),
        _ => 0,
    }
}

/// `s.encode('latin1')`, if `enc` names Latin-1 and every char fits.
fn latin1(s: &str, enc: &str) -> Option<Vec<u8>> {
    if !matches!(
        enc.to_ascii_lowercase().as_str(),
        "latin1" | "latin-1" | "latin_1" | "iso-8859-1" | "iso8859-1" | "l1"
    ) {
        return None;
    }
    s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect()
}

/// An int from minimal-or-not little-endian two's complement bytes (`LONG1`/`LONG4`).
fn int_from_le(bytes: &[u8]) -> Value {
    let big = BigInt::from_le_bytes(bytes);
    match big.to_i128().and_then(|i| i64::try_from(i).ok()) {
        Some(i) => Value::Int(i),
        None => Value::BigInt(big),
    }
}

/// A protocol 0 decimal int (`I`/`L` argument): optional sign, decimal digits.
fn parse_decimal_int(text: &[u8]) -> Result<Value, &'static str> {
    let text = text.trim_ascii();
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err("not a decimal int");
    }
    if digits.len() > MAX_INT_DIGITS {
        return Err("int longer than 4300 digits");
    }
    // Magnitude in base 2^32 limbs, least significant first, folding nine
    // digits per pass over the limbs (10^9 < 2^32).
    let mut limbs: Vec<u32> = Vec::with_capacity(digits.len() / 9 + 1);
    let first = match digits.len() % 9 {
        0 => 9,
        n => n,
    };
    let (head, tail) = digits.split_at(first.min(digits.len()));
    for (chunk, scale) in std::iter::once((head, 10u64.pow(head.len() as u32)))
        .chain(tail.chunks(9).map(|c| (c, 1_000_000_000)))
    {
        let mut carry = chunk
            .iter()
            .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
        for limb in &mut limbs {
            let cur = u64::from(*limb) * scale + carry;
            *limb = cur as u32;
            carry = cur >> 32;
        }
        if carry != 0 {
            limbs.push(carry as u32);
        }
    }
    let mut bytes: Vec<u8> = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
    bytes.push(0); // room for the sign bit
    if negative {
        let mut carry = true;
        for b in &mut bytes {
            let (v, c) = (!*b).overflowing_add(u8::from(carry));
            *b = v;
            carry = c;
        }
    }
    Ok(int_from_le(&bytes))
}

/// Python's `codecs.escape_decode`, as protocol 0 `STRING` uses it.
fn escape_decode(s: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some((&e, tail)) = rest.split_first() else {
            return Err("trailing \\ in string");
        };
        rest = tail;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match rest.split_first() {
                        Some((&d @ b'0'..=b'7', tail)) => {
                            v = v * 8 + u32::from(d - b'0');
                            rest = tail;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hex = rest.get(..2).ok_or("invalid \\x escape")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "invalid \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "invalid \\x escape")?);
                rest = rest.get(2..).unwrap_or_default();
            }
            _ => out.extend([b'\\', e]),
        }
    }
    Ok(out)
}

/// Python's `raw-unicode-escape` decoding, as protocol 0 `UNICODE` uses it:
/// Latin-1 bytes, with `\uXXXX` and `\UXXXXXXXX` escapes after an odd number of
/// backslashes. The result is generalized UTF-8: a `\ud800` escape is a lone
/// surrogate, encoded on its own.
fn raw_unicode_escape_decode(s: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        let digits = match (c, rest.first()) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            (b'\\', Some(b'\\')) => {
                out.extend(b"\\\\");
                rest = rest.get(1..).unwrap_or_default();
                continue;
            }
            _ => {
                py::push_wtf8(&mut out, c.into());
                continue;
            }
        };
        let hex = rest.get(1..=digits).ok_or("truncated \\u escape")?;
        let hex = std::str::from_utf8(hex).map_err(|_| "bad \\u escape")?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("bad \\u escape");
        }
        let code = u32::from_str_radix(hex, 16).map_err(|_| "bad \\u escape")?;
        if code > 0x10ffff {
            return Err("\\u escape out of range");
        }
        py::push_wtf8(&mut out, code);
        rest = rest.get(1 + digits..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without `DUP` or memo reads, `materialize` skips counting paths: on every stream of
    /// the fuzz corpora, the result (or the error) is the same as with the counting.
    #[test]
    fn the_unshared_fast_path_agrees_with_path_counting() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
        let limits = DecodeLimits::default();
        let mut streams = 0;
        let mut unshared = 0;
        for corpus in ["pickle_decode", "pickle_memory"] {
            let dir = std::fs::read_dir(format!("{root}/{corpus}")).expect("the fuzz corpus");
            for entry in dir {
                let input = std::fs::read(entry.expect("a corpus entry").path()).expect("read");
                if input.is_empty() || input.len() > limits.max_input {
                    continue;
                }
                let counted = {
                    let mut machine = Machine::new(&input, &limits);
                    machine.run().and_then(|root| {
                        unshared += usize::from(!machine.shared);
                        machine.shared = true;
                        machine.materialize(root)
                    })
                };
                let fast = decode(&input, &limits);
                // Debug, not ==: a NaN is not equal to itself.
                assert_eq!(format!("{fast:?}"), format!("{counted:?}"), "{input:?}");
                streams += 1;
            }
        }
        assert!(
            streams > 1000 && unshared > 100,
            "{streams} streams, {unshared} unshared"
        );
    }

    /// A string with a lone surrogate, memoized and read back 10,000 times: its copies are
    /// charged like a plain string's (they were free: 655 MB held for 85 KB, found by the
    /// pickle_memory oracle; its input is in that corpus).
    #[test]
    fn memo_copies_of_a_surrogate_string_are_charged() {
        let mut text = vec![b'x'; 65536];
        text[100..103].copy_from_slice(b"\xed\xa0\x80");
        let mut p = b"\x80\x02X".to_vec();
        p.extend(u32::try_from(text.len()).unwrap().to_le_bytes());
        p.extend(&text);
        p.extend(b"q\x000(");
        for _ in 0..10_000 {
            p.extend(b"h\x00");
        }
        p.extend(b"l.");
        match decode(&p, &DecodeLimits::default()) {
            Ok(_) => panic!("accepted 10,000 copies of a 64 KiB string"),
            Err(e) => assert!(e.to_string().contains("copied beyond"), "{e}"),
        }
        // A few copies are fine, and equal to the original.
        let mut q = p[..p.len() - 2 - 2 * 10_000].to_vec();
        q.extend(b"h\x00h\x00l.");
        let Value::List(items) = decode(&q, &DecodeLimits::default()).unwrap() else {
            panic!("a list");
        };
        assert_eq!(
            items,
            [Value::SurrogateStr(text.clone()), Value::SurrogateStr(text)]
        );
    }

    #[track_caller]
    fn check(input: &[u8], expected: Result<Value, &str>) {
        let got = decode(input, &DecodeLimits::default()).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{input:?}");
    }

    #[test]
    fn decodes_small_streams() {
        check(b"N.", Ok(Value::None));
        check(b"I01\n.", Ok(Value::Bool(true)));
        check(b"I00\n.", Ok(Value::Bool(false)));
        check(b"I-12\n.", Ok(Value::Int(-12)));
        check(b"L-12L\n.", Ok(Value::Int(-12)));
        check(
            b"L18446744073709551616L\n.",
            Ok(Value::BigInt(BigInt::from_i128(1 << 64))),
        );
        check(
            b"I-18446744073709551616\n.",
            Ok(Value::BigInt(BigInt::from_i128(-(1 << 64)))),
        );
        check(b"F-0.0\n.", Ok(Value::Float(-0.0)));
        check(b"Finf\n.", Ok(Value::Float(f64::INFINITY)));
        check(b"S'a\\'b\\x41\\101\\n'\n.", Ok(Value::from("a'bAA\n")));
        check(
            b"S'\\xff'\n.",
            Err("bad STRING at byte 0: non-ascii string (python 2 str)"),
        );
        check(b"U\x02ab.", Ok(Value::from("ab")));
        check(
            b"Va\\u005c\\\\u0041\xe9\\U0001f600\n.",
            Ok(Value::from("a\\\\\\u0041é😀")),
        );
        check(
            b"V\\ud800\n.",
            Ok(Value::SurrogateStr(b"\xed\xa0\x80".to_vec())),
        );
        check(
            b"V\\U00110000\n.",
            Err("bad UNICODE at byte 0: \\u escape out of range"),
        );
        check(b"\x8a\x00.", Ok(Value::Int(0)));
        check(b"\x8a\x02\xff\x7f.", Ok(Value::Int(0x7fff)));
        check(
            b"(K\x01K\x02l.",
            Ok(Value::from(vec![Value::from(1), Value::from(2)])),
        );
        check(b"(K\x0101.", Err("stack underflow at STOP at byte 5"));
        check(
            b"K\x01K\x02.",
            Err("STOP at byte 4 leaves 2 values and 0 marks on the stack"),
        );
        check(
            b"(K\x01.",
            Err("STOP at byte 3 leaves 1 values and 1 marks on the stack"),
        );
        check(b"K\x01(a.", Err("stack underflow at APPEND at byte 3"));
        check(b"}K\x01a.", Err("APPEND at byte 3 needs a list"));
        check(
            b"}(K\x01u.",
            Err("bad SETITEMS at byte 4: odd number of items"),
        );
        check(b"\x80\x06N.", Err("unsupported protocol 6 at byte 0"));
        check(b"\x95\x01\x00\x00\x00\x00\x00\x00\x00N.", Ok(Value::None));
        check(b"h\x00.", Err("BINGET at byte 0 reads unset memo index 0"));
        check(b"N.N", Err("1 trailing bytes after STOP at byte 1"));
        check(b"N", Err("input ended at byte 1 without STOP"));
        check(b"\xff", Err("unknown opcode 0xff at byte 0"));
        check(
            b"c__builtin__\nset\n.",
            Ok(Value::Global(Box::new(Global::new("builtins", "set")))),
        );
        let refuse = DecodeLimits {
            objects: ObjectPolicy::Refuse,
            ..DecodeLimits::default()
        };
        assert_eq!(
            decode(b"c__builtin__\nset\n.", &refuse).map_err(|e| e.to_string()),
            Err("global builtins.set used as a value".to_owned())
        );
        check(
            b"\x8c\x08builtins\x8c\x04eval\x93.",
            Ok(Value::Global(Box::new(Global::new("builtins", "eval")))),
        );
        assert_eq!(
            decode(b"\x8c\x08builtins\x8c\x04eval\x93.", &refuse).map_err(|e| e.to_string()),
            Err("refused global builtins.eval at byte 16".to_owned())
        );
    }

    proptest::proptest! {
        #[test]
        fn decimal_ints_parse_at_every_length(
            negative: bool,
            lead in 1u8..=9,
            rest in proptest::collection::vec(0u8..=9, 0..MAX_INT_DIGITS),
        ) {
            let digits: String = std::iter::once(lead)
                .chain(rest)
                .map(|d| char::from(b'0' + d))
                .collect();
            let text = format!("{}{digits}", if negative { "-" } else { "" });
            let parsed = parse_decimal_int(text.as_bytes()).map_err(str::to_owned);
            let shown = parsed.map(|v| match v {
                Value::Int(i) => i.to_string(),
                Value::BigInt(b) => b.to_string(),
                other => format!("{other:?}"),
            });
            proptest::prop_assert_eq!(shown, Ok(text));
        }
    }

    #[test]
    fn memo_indices_dense_and_sparse() {
        // MEMOIZE takes the number of entries as its index, wherever they are.
        let tuple = |items: Vec<Value>| Ok(Value::Tuple(items));
        check(
            b"\x80\x04(Nq\x05\x94K\x07\x94h\x02h\x01h\x05t.",
            tuple(vec![
                Value::None,
                Value::from(7),
                Value::from(7),
                Value::None,
                Value::None,
            ]),
        );
        // 4000000000: far beyond the dense part, kept apart.
        check(
            b"\x80\x04(Nr\x00\x28\x6b\xee\x94K\x07r\x00\x28\x6b\xeej\x00\x28\x6b\xeeh\x01t.",
            tuple(vec![
                Value::None,
                Value::from(7),
                Value::from(7),
                Value::None,
            ]),
        );
        check(
            b"\x80\x04Nr\x00\x28\x6b\xeej\x01\x28\x6b\xee.",
            Err("LONG_BINGET at byte 8 reads unset memo index 4000000001"),
        );
    }

    /// The budget charged for the memo covers the memory it holds.
    #[track_caller]
    fn check_memo_charges(input: &[u8]) {
        let limits = DecodeLimits::default();
        let mut machine = Machine::new(input, &limits);
        machine.run().expect("a valid stream");
        let charged = limits.max_decoded - machine.budget.left;
        let held = machine.memo.heap_bytes();
        assert!(held > 0);
        assert!(
            charged >= held,
            "charged {charged} bytes for a memo of {held}"
        );
    }

    #[test]
    fn memo_is_charged_what_it_holds() {
        // One value memoized a million times, as CPython would number it.
        let mut dense = b"\x80\x04N".to_vec();
        dense.extend(std::iter::repeat_n(op::MEMOIZE, 1_000_000));
        dense.push(b'.');
        check_memo_charges(&dense);
        // The same with indices far apart.
        let mut sparse = b"\x80\x04N".to_vec();
        for i in 0..100_000u32 {
            sparse.push(op::LONG_BINPUT);
            sparse.extend((i * 40_000).to_le_bytes());
        }
        sparse.push(b'.');
        check_memo_charges(&sparse);
    }

    #[test]
    fn refuses_unhashable_keys_and_items() {
        // Each refused by CPython's pickle.loads with "TypeError: unhashable type".
        check(
            b"\x80\x02}]Ns.",
            Err("unhashable type 'list' in a dict key"),
        );
        check(
            b"\x80\x04\x8f(}\x90.",
            Err("unhashable type 'dict' in a set"),
        );
        check(
            b"\x80\x04}\x96\x00\x00\x00\x00\x00\x00\x00\x00\x85Ns.",
            Err("unhashable type 'bytearray' in a dict key"),
        );
        check(
            b"\x80\x04(]\x91.",
            Err("unhashable type 'list' in a frozenset"),
        );
        // set([{}]) through REDUCE, as protocol 2 writes sets.
        check(
            b"\x80\x02c__builtin__\nset\n]}a\x85R.",
            Err("unhashable type 'dict' in a set"),
        );
        // A list key filled after it became a key is still a list.
        check(
            b"\x80\x02}]q\x00Nsh\x00K\x01a0.",
            Err("unhashable type 'list' in a dict key"),
        );
        check(
            b"\x80\x02}N]s.",
            Ok(Value::Dict(vec![(Value::None, Value::List(vec![]))])),
        );
        check(
            b"\x80\x04}(K\x01\x8c\x01a\x86(\x8c\x01b\x91\x86Nu.",
            Ok(Value::Dict(vec![(
                Value::Tuple(vec![
                    Value::Tuple(vec![Value::from(1), Value::from("a")]),
                    Value::FrozenSet(vec![Value::from("b")]),
                ]),
                Value::None,
            )])),
        );
    }

    #[test]
    fn shared_leaves_are_copied_and_single_ones_moved() {
        // x = [b'abc']; [x, x]: the leaf is held once by x, but x twice.
        let abc = || Value::List(vec![Value::Bytes(b"abc".to_vec())]);
        check(
            b"(]q\x00C\x03abcah\x00l.",
            Ok(Value::List(vec![abc(), abc()])),
        );
        // A megabyte of bytes stays in the input until the result is built,
        // and costs its length once per copy the result holds.
        let mut one = b"\x80\x04B\x00\x00\x10\x00".to_vec();
        one.extend(std::iter::repeat_n(7, 1 << 20));
        let mut twice = b"\x80\x04(".to_vec();
        twice.extend(&one[2..]);
        twice.extend(b"\x94h\x00l.");
        one.push(b'.');
        let limits = |max_decoded| DecodeLimits {
            max_decoded,
            ..DecodeLimits::default()
        };
        let bytes = Value::Bytes(vec![7; 1 << 20]);
        assert_eq!(decode(&one, &limits(3 << 19)), Ok(bytes.clone()));
        assert_eq!(
            decode(&twice, &limits(2 << 20)),
            Err(DecodeError::TooLarge { max: 2 << 20 })
        );
        assert_eq!(
            decode(&twice, &limits(3 << 20)),
            Ok(Value::List(vec![bytes.clone(), bytes]))
        );
    }

    #[test]
    fn memo_aliases_containers() {
        // x = []; [x, x] with x filled after both references exist.
        let v = decode(b"(]q\x00h\x00lh\x00K\x07a0.", &DecodeLimits::default());
        assert_eq!(
            v,
            Ok(Value::List(vec![
                Value::List(vec![Value::from(7)]),
                Value::List(vec![Value::from(7)]),
            ]))
        );
    }
}
