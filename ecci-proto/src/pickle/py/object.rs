//! Inert objects: what a class-building opcode becomes when nothing may be called.

use crate::pickle::Value;

/// A class or function named by a pickle (`GLOBAL`/`STACK_GLOBAL`), never looked up.
///
/// ```
/// use ecci_proto::pickle::Global;
/// let g = Global::new("collections", "OrderedDict");
/// assert_eq!(g.to_string(), "collections.OrderedDict");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Global {
    /// The module, as the stream names it (`"numpy._core.multiarray"`).
    pub module: String,
    /// The qualified name inside the module (`"Outer.Inner"`).
    pub name: String,
}

impl Global {
    /// A global from its module and qualified name.
    pub fn new(module: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            module: module.into(),
            name: name.into(),
        }
    }

    /// Whether this is `module.name`, with Python 2's `__builtin__` read as `builtins`
    /// and `copy_reg` as `copyreg`.
    pub fn is(&self, module: &str, name: &str) -> bool {
        let own = match self.module.as_str() {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            other => other,
        };
        own == module && self.name == name
    }
}

impl std::fmt::Display for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.module, self.name)
    }
}

/// How a pickle asked for an object to be built; kept so that the object can be
/// written back the same way when an application allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Construct {
    /// `REDUCE`: `class(*args)` (also `INST` and `OBJ`, the protocol 0/1 forms).
    Call,
    /// `NEWOBJ`/`NEWOBJ_EX`: `class.__new__(class, *args, **kwargs)`.
    New,
}

/// An instance of a class the decoder does not map to a typed value, recorded as
/// data: the class, the arguments the pickle passes to it, the state `BUILD`
/// sets, and the items `APPEND(S)`/`SETITEM(S)` add. Nothing was called or looked
/// up to build it.
///
/// A namedtuple or a dataclass arrives as one of these; [`Object::field`] reads an
/// attribute from the state by name, where the pickle carries names.
///
/// ```
/// use ecci_proto::pickle::{DecodeLimits, Value, decode};
/// // pickle.dumps(Plain(x=1), 2) for `class Plain` in __main__
/// let v = decode(b"\x80\x02c__main__\nPlain\nq\x00)\x81q\x01}q\x02X\x01\x00\x00\x00xq\x03K\x01sb.",
///                &DecodeLimits::default())?;
/// let Value::Object(obj) = v else { panic!("{v:?}") };
/// assert!(obj.class.is("__main__", "Plain"));
/// assert_eq!(obj.field("x"), Some(&Value::Int(1)));
/// # Ok::<(), ecci_proto::pickle::DecodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The class (or, for `REDUCE`, the callable) named by the stream.
    pub class: Global,
    /// How the stream builds it.
    pub construct: Construct,
    /// The positional arguments.
    pub args: Vec<Value>,
    /// The keyword arguments (`NEWOBJ_EX` only), in wire order.
    pub kwargs: Vec<(Value, Value)>,
    /// What `BUILD` passes to `__setstate__` (usually the instance `__dict__`, or a
    /// `(dict, slots)` pair), if the stream has a `BUILD`.
    pub state: Option<Value>,
    /// Items added with `APPEND`/`APPENDS` (a list subclass, a deque, …).
    pub items: Vec<Value>,
    /// Pairs added with `SETITEM`/`SETITEMS` (a dict subclass, …).
    pub dict_items: Vec<(Value, Value)>,
}

impl Object {
    /// An object built by calling `class` with `args` and nothing else.
    pub fn call(class: Global, args: Vec<Value>) -> Self {
        Self {
            class,
            construct: Construct::Call,
            args,
            kwargs: Vec::new(),
            state: None,
            items: Vec::new(),
            dict_items: Vec::new(),
        }
    }

    /// The attribute `name` from the state: a `__dict__` entry, or a slot from
    /// a `(dict, slots)` state.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self.state.as_ref()? {
            state @ Value::Dict(_) => state.get(name),
            Value::Tuple(parts) => parts.iter().rev().find_map(|part| part.get(name)),
            _ => None,
        }
    }
}
