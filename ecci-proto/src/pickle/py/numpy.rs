//! numpy arrays and scalars, read from the pickles numpy 1.x and 2.x write, never
//! by importing numpy.
//!
//! numpy pickles an array in one of two forms:
//!
//! - protocols 0–4 (and non-contiguous arrays under 5):
//!   `numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')` then `BUILD`
//!   with `(1, shape, dtype, is_fortran, raw_bytes)`;
//! - protocol 5: `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)`, the
//!   buffer an in-band `PickleBuffer` (`BYTEARRAY8`, or bytes when read-only).
//!
//! numpy 2.x names the modules `numpy._core…`; both are read. A dtype is
//! `numpy.dtype(code, False, True)` then `BUILD` with `(version, byteorder, …)`.
//! Only fixed-size numeric dtypes become an [`NdArray`]; `dtype=object`,
//! structured and datetime arrays stay inert objects.

use bytes::Bytes;

use crate::pickle::py::object::Global;

/// The element type of a numeric numpy array or scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// `bool` (one byte, 0 or 1).
    Bool,
    /// `int8`.
    I8,
    /// `int16`.
    I16,
    /// `int32`.
    I32,
    /// `int64`.
    I64,
    /// `uint8`.
    U8,
    /// `uint16`.
    U16,
    /// `uint32`.
    U32,
    /// `uint64`.
    U64,
    /// `float16` (IEEE half).
    F16,
    /// `float32`.
    F32,
    /// `float64`.
    F64,
    /// `complex64` (two `float32`).
    C64,
    /// `complex128` (two `float64`).
    C128,
}

impl Scalar {
    const ALL: [Scalar; 14] = [
        Scalar::Bool,
        Scalar::I8,
        Scalar::I16,
        Scalar::I32,
        Scalar::I64,
        Scalar::U8,
        Scalar::U16,
        Scalar::U32,
        Scalar::U64,
        Scalar::F16,
        Scalar::F32,
        Scalar::F64,
        Scalar::C64,
        Scalar::C128,
    ];

    /// The size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            Scalar::Bool | Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 | Scalar::F16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::I64 | Scalar::U64 | Scalar::F64 | Scalar::C64 => 8,
            Scalar::C128 => 16,
        }
    }

    /// numpy's name (`"uint8"`, `"float32"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::I8 => "int8",
            Scalar::I16 => "int16",
            Scalar::I32 => "int32",
            Scalar::I64 => "int64",
            Scalar::U8 => "uint8",
            Scalar::U16 => "uint16",
            Scalar::U32 => "uint32",
            Scalar::U64 => "uint64",
            Scalar::F16 => "float16",
            Scalar::F32 => "float32",
            Scalar::F64 => "float64",
            Scalar::C64 => "complex64",
            Scalar::C128 => "complex128",
        }
    }

    /// The array-protocol code without byte order (`"u1"`, `"f4"`, `"c16"`).
    pub fn code(self) -> &'static str {
        match self {
            Scalar::Bool => "b1",
            Scalar::I8 => "i1",
            Scalar::I16 => "i2",
            Scalar::I32 => "i4",
            Scalar::I64 => "i8",
            Scalar::U8 => "u1",
            Scalar::U16 => "u2",
            Scalar::U32 => "u4",
            Scalar::U64 => "u8",
            Scalar::F16 => "f2",
            Scalar::F32 => "f4",
            Scalar::F64 => "f8",
            Scalar::C64 => "c8",
            Scalar::C128 => "c16",
        }
    }

    /// From an array-protocol code (`"u1"`), if it names a fixed-size numeric type.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// Byte order of multi-byte elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ByteOrder {
    /// Little-endian (`'<'`), what x86 and ARM numpy write.
    #[default]
    Little,
    /// Big-endian (`'>'`).
    Big,
}

/// A numpy dtype of fixed-size numeric elements.
///
/// ```
/// use ecci_proto::pickle::{ByteOrder, DType, Scalar};
/// let dt = DType::new(Scalar::U16, ByteOrder::Big);
/// assert_eq!(dt.to_string(), ">u2");
/// assert_eq!(DType::new(Scalar::U8, ByteOrder::Big).to_string(), "|u1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DType {
    /// The element type.
    pub scalar: Scalar,
    /// The byte order (irrelevant for one-byte types).
    pub order: ByteOrder,
}

impl DType {
    /// A dtype.
    pub fn new(scalar: Scalar, order: ByteOrder) -> Self {
        Self { scalar, order }
    }

    /// numpy's byte-order character: `'|'` for one-byte types, else `'<'` or `'>'`.
    pub fn order_char(self) -> char {
        match (self.scalar.size(), self.order) {
            (1, _) => '|',
            (_, ByteOrder::Little) => '<',
            (_, ByteOrder::Big) => '>',
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.order_char(), self.scalar.code())
    }
}

/// The memory layout of an array's elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Order {
    /// Row-major (`'C'`): the last index varies fastest.
    #[default]
    C,
    /// Column-major (`'F'`): the first index varies fastest.
    F,
}

/// A numpy `ndarray` of a fixed-size numeric dtype: element type, shape, layout and
/// the raw element bytes.
///
/// Decoded from a [`bytes::Bytes`] payload with
/// [`decode_bytes`](crate::pickle::decode_bytes), the data is a view on the
/// payload (no copy) whenever the pickle carries the bytes verbatim (protocol 3
/// and up).
///
/// ```
/// use ecci_proto::pickle::{ByteOrder, DType, NdArray, Order, Scalar};
/// let a = NdArray::new(DType::new(Scalar::U8, ByteOrder::Little), vec![2, 3], Order::C, vec![0u8; 6])?;
/// assert_eq!(a.to_string(), "ndarray(uint8, 2×3)");
/// assert_eq!(a.len(), 6);
/// # Ok::<(), ecci_proto::pickle::NdArrayError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NdArray {
    dtype: DType,
    shape: Vec<usize>,
    order: Order,
    data: Bytes,
}

/// Why [`NdArray::new`] refused its parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("array data of {found} bytes does not match shape {shape:?} of {dtype} ({expected} bytes)")]
pub struct NdArrayError {
    dtype: String,
    shape: Vec<usize>,
    expected: String,
    found: usize,
}

impl NdArray {
    /// An array from its parts; the data must hold exactly `shape`'s product of elements.
    ///
    /// # Errors
    ///
    /// When the data length does not match the shape and dtype.
    pub fn new(
        dtype: DType,
        shape: Vec<usize>,
        order: Order,
        data: impl Into<Bytes>,
    ) -> Result<Self, NdArrayError> {
        let data = data.into();
        let expected = shape
            .iter()
            .try_fold(dtype.scalar.size(), |acc, &d| acc.checked_mul(d));
        if expected != Some(data.len()) {
            return Err(NdArrayError {
                dtype: dtype.to_string(),
                shape,
                expected: expected.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
                found: data.len(),
            });
        }
        Ok(Self {
            dtype,
            shape,
            order,
            data,
        })
    }

    /// The element type and byte order.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The shape (empty for a 0-d array).
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The layout of [`data`](Self::data).
    pub fn order(&self) -> Order {
        self.order
    }

    /// The raw element bytes, in [`order`](Self::order) and the dtype's byte order.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The raw element bytes, owned (a view: no copy).
    pub fn into_data(self) -> Bytes {
        self.data
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same array with little-endian elements (a view when it already is).
    ///
    /// ```
    /// use ecci_proto::pickle::{ByteOrder, DType, NdArray, Order, Scalar};
    /// let be = NdArray::new(DType::new(Scalar::U16, ByteOrder::Big), vec![1], Order::C, vec![1, 2])?;
    /// let le = be.to_little_endian();
    /// assert_eq!((le.dtype().order, &le.data()[..]), (ByteOrder::Little, &[2u8, 1][..]));
    /// # Ok::<(), ecci_proto::pickle::NdArrayError>(())
    /// ```
    pub fn to_little_endian(&self) -> NdArray {
        if self.dtype.order == ByteOrder::Little || self.dtype.scalar.size() == 1 {
            let mut same = self.clone();
            same.dtype.order = ByteOrder::Little;
            return same;
        }
        // A complex number swaps each of its two parts.
        let part = match self.dtype.scalar {
            Scalar::C64 | Scalar::C128 => self.dtype.scalar.size() / 2,
            other => other.size(),
        };
        let mut data = self.data.to_vec();
        for chunk in data.chunks_exact_mut(part) {
            chunk.reverse();
        }
        NdArray {
            dtype: DType::new(self.dtype.scalar, ByteOrder::Little),
            shape: self.shape.clone(),
            order: self.order,
            data: data.into(),
        }
    }

    /// The elements as native values, in memory order ([`order`](Self::order)).
    ///
    /// ```
    /// use ecci_proto::pickle::{ByteOrder, DType, NdArray, Order, Scalar};
    /// let a = NdArray::new(DType::new(Scalar::U16, ByteOrder::Big), vec![2], Order::C, vec![0, 1, 1, 0])?;
    /// assert_eq!(a.to_vec::<u16>(), Some(vec![1, 256]));
    /// assert_eq!(a.to_vec::<i16>(), None);
    /// # Ok::<(), ecci_proto::pickle::NdArrayError>(())
    /// ```
    pub fn to_vec<T: Element>(&self) -> Option<Vec<T>> {
        if self.dtype.scalar != T::SCALAR {
            return None;
        }
        let size = T::SCALAR.size();
        Some(
            self.data
                .chunks_exact(size)
                .map(|c| T::from_bytes(c, self.dtype.order))
                .collect(),
        )
    }
}

/// `ndarray(uint8, 480×640×3)`: type and shape, never the data.
impl std::fmt::Display for NdArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ndarray({}, ", self.dtype.scalar.name())?;
        if self.shape.is_empty() {
            f.write_str("()")?;
        }
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str("×")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str(")")
    }
}

/// A Rust type that is the element type of a numpy dtype.
pub trait Element: Copy {
    /// The numpy element type.
    const SCALAR: Scalar;
    /// Reads one element (exactly `SCALAR.size()` bytes).
    fn from_bytes(bytes: &[u8], order: ByteOrder) -> Self;
    /// Writes one element in little-endian order.
    fn write_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($($t:ty => $s:ident),*) => {$(
        impl Element for $t {
            const SCALAR: Scalar = Scalar::$s;
            fn from_bytes(bytes: &[u8], order: ByteOrder) -> Self {
                let mut buf = [0u8; std::mem::size_of::<$t>()];
                buf.copy_from_slice(bytes);
                match order {
                    ByteOrder::Little => <$t>::from_le_bytes(buf),
                    ByteOrder::Big => <$t>::from_be_bytes(buf),
                }
            }
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend(self.to_le_bytes());
            }
        }
    )*};
}
element!(i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u16 => U16, u32 => U32,
    u64 => U64, f32 => F32, f64 => F64);

impl Element for bool {
    const SCALAR: Scalar = Scalar::Bool;
    fn from_bytes(bytes: &[u8], _: ByteOrder) -> Self {
        bytes.first().is_some_and(|&b| b != 0)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

/// A numpy scalar (`np.float32(1.5)`, `np.int64(7)`): its dtype and raw bytes.
///
/// [`NumpyScalar::to_value`] gives the plain Python value (`float`, `int`,
/// `bool`, `complex`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NumpyScalar {
    dtype: DType,
    data: Vec<u8>,
}

impl NumpyScalar {
    /// A scalar from its dtype and exactly `dtype.scalar.size()` bytes.
    pub fn new(dtype: DType, data: Vec<u8>) -> Option<Self> {
        (data.len() == dtype.scalar.size()).then_some(Self { dtype, data })
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The raw bytes, in the dtype's byte order.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The value as Python would see it after `.item()`.
    pub fn to_value(&self) -> crate::pickle::Value {
        use crate::pickle::Value;
        let o = self.dtype.order;
        let d = &self.data[..];
        match self.dtype.scalar {
            Scalar::Bool => Value::Bool(bool::from_bytes(d, o)),
            Scalar::I8 => Value::Int(i8::from_bytes(d, o).into()),
            Scalar::I16 => Value::Int(i16::from_bytes(d, o).into()),
            Scalar::I32 => Value::Int(i32::from_bytes(d, o).into()),
            Scalar::I64 => Value::Int(i64::from_bytes(d, o)),
            Scalar::U8 => Value::Int(u8::from_bytes(d, o).into()),
            Scalar::U16 => Value::Int(u16::from_bytes(d, o).into()),
            Scalar::U32 => Value::Int(u32::from_bytes(d, o).into()),
            Scalar::U64 => crate::pickle::ser::int_from_u128(u64::from_bytes(d, o).into()),
            Scalar::F16 => Value::Float(f16_to_f64(u16::from_bytes(d, o))),
            Scalar::F32 => Value::Float(f32::from_bytes(d, o).into()),
            Scalar::F64 => Value::Float(f64::from_bytes(d, o)),
            Scalar::C64 => Value::Complex {
                re: f32::from_bytes(&d[..4], o).into(),
                im: f32::from_bytes(&d[4..], o).into(),
            },
            Scalar::C128 => Value::Complex {
                re: f64::from_bytes(&d[..8], o),
                im: f64::from_bytes(&d[8..], o),
            },
        }
    }
}

impl std::fmt::Display for NumpyScalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "np.{}({})", self.dtype.scalar.name(), self.to_value())
    }
}

/// IEEE half to double, exactly.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    match exp {
        0 => sign * mant * 2f64.powi(-24),
        0x1f if mant == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        _ => sign * (1.0 + mant / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// Whether `g` is numpy's array reconstructor of numpy 1.x or 2.x.
pub(crate) fn is_reconstruct(g: &Global) -> bool {
    g.is("numpy.core.multiarray", "_reconstruct") || g.is("numpy._core.multiarray", "_reconstruct")
}

/// Whether `g` is numpy's protocol 5 `_frombuffer`.
pub(crate) fn is_frombuffer(g: &Global) -> bool {
    g.is("numpy.core.numeric", "_frombuffer") || g.is("numpy._core.numeric", "_frombuffer")
}

/// Whether `g` is numpy's scalar constructor.
pub(crate) fn is_scalar(g: &Global) -> bool {
    g.is("numpy.core.multiarray", "scalar") || g.is("numpy._core.multiarray", "scalar")
}

/// What the recognizer sees of a node of the decoder's graph.
#[derive(Debug)]
pub(crate) enum View<'a> {
    Int(i64),
    Bool(bool),
    None,
    Str(&'a str),
    /// `bytes`/`bytearray` (also a protocol 2 `_codecs.encode` result).
    Bytes,
    Tuple(&'a [usize]),
    Global(&'a Global),
    Object {
        class: &'a Global,
        args: &'a [usize],
        state: Option<usize>,
        /// Whether it has kwargs or items, which no numpy object has.
        extra: bool,
    },
    Other,
}

/// Read access to the decoder's graph of nodes.
pub(crate) trait Graph {
    fn view(&self, id: usize) -> View<'_>;
    /// The bytes of a `Bytes` node: a view on the input when it came verbatim.
    fn bytes(&self, id: usize) -> Option<Bytes>;
}

/// A dtype from a `numpy.dtype(code, False, True)` object node with its `BUILD` state.
pub(crate) fn dtype_from_graph(g: &dyn Graph, id: usize) -> Option<DType> {
    let View::Object {
        class,
        args,
        state,
        extra: false,
    } = g.view(id)
    else {
        return None;
    };
    if !class.is("numpy", "dtype") {
        return None;
    }
    let code = match args.first().map(|&a| g.view(a)) {
        Some(View::Str(code)) => code,
        _ => return None,
    };
    let scalar = Scalar::from_code(code)?;
    let order = match state.map(|s| g.view(s)) {
        Some(View::Tuple(parts)) => {
            // (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
            let plain = parts
                .get(2..5)
                .is_some_and(|rest| rest.iter().all(|&p| matches!(g.view(p), View::None)));
            if !plain {
                return None;
            }
            match parts.get(1).map(|&p| g.view(p)) {
                Some(View::Str("<" | "|" | "=")) => ByteOrder::Little,
                Some(View::Str(">")) => ByteOrder::Big,
                _ => return None,
            }
        }
        None => ByteOrder::Little,
        _ => return None,
    };
    Some(DType::new(scalar, order))
}

fn usize_of(g: &dyn Graph, id: usize) -> Option<usize> {
    match g.view(id) {
        View::Int(i) => usize::try_from(i).ok(),
        _ => None,
    }
}

fn shape_of(g: &dyn Graph, id: usize) -> Option<Vec<usize>> {
    match g.view(id) {
        View::Tuple(dims) => dims.iter().map(|&d| usize_of(g, d)).collect(),
        View::Int(_) => Some(vec![usize_of(g, id)?]),
        _ => None,
    }
}

/// An array from an object node of either numpy form, or `None` when the node is
/// not an array of a numeric dtype (it then stays an inert object).
pub(crate) fn array_from_graph(g: &dyn Graph, id: usize) -> Option<NdArray> {
    let View::Object {
        class,
        args,
        state,
        extra: false,
    } = g.view(id)
    else {
        return None;
    };
    if is_reconstruct(class) {
        // _reconstruct(ndarray, (0,), b'b') + BUILD (1, shape, dtype, is_fortran, data)
        match args.first().map(|&a| g.view(a)) {
            Some(View::Global(sub)) if sub.is("numpy", "ndarray") => {}
            _ => return None,
        }
        let View::Tuple(parts) = g.view(state?) else {
            return None;
        };
        let [version, shape, dtype, fortran, data] = parts else {
            return None;
        };
        if usize_of(g, *version) != Some(1) {
            return None;
        }
        let order = match g.view(*fortran) {
            View::Bool(false) | View::Int(0) => Order::C,
            View::Bool(true) | View::Int(1) => Order::F,
            _ => return None,
        };
        let dtype = dtype_from_graph(g, *dtype)?;
        return NdArray::new(dtype, shape_of(g, *shape)?, order, g.bytes(*data)?).ok();
    }
    if is_frombuffer(class) {
        // _frombuffer(buffer, dtype, shape, order)
        if state.is_some() {
            return None;
        }
        let [buffer, dtype, shape, order] = args else {
            return None;
        };
        let order = match g.view(*order) {
            View::Str("C") => Order::C,
            View::Str("F") => Order::F,
            _ => return None,
        };
        let dtype = dtype_from_graph(g, *dtype)?;
        return NdArray::new(dtype, shape_of(g, *shape)?, order, g.bytes(*buffer)?).ok();
    }
    None
}

/// A scalar from `scalar(dtype, bytes)`, or `None`.
pub(crate) fn scalar_from_graph(g: &dyn Graph, id: usize) -> Option<NumpyScalar> {
    let View::Object {
        class,
        args,
        state: None,
        extra: false,
    } = g.view(id)
    else {
        return None;
    };
    if !is_scalar(class) {
        return None;
    }
    let [dtype, data] = args else {
        return None;
    };
    let dtype = dtype_from_graph(g, *dtype)?;
    NumpyScalar::new(dtype, g.bytes(*data)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats() {
        for (bits, want) in [
            (0x3c00u16, 1.0),
            (0xc000, -2.0),
            (0x0001, 2f64.powi(-24)),
            (0x7bff, 65504.0),
            (0x7c00, f64::INFINITY),
            (0x3555, 0.333_251_953_125),
        ] {
            assert_eq!(f16_to_f64(bits), want, "{bits:#x}");
        }
        assert!(f16_to_f64(0x7e00).is_nan());
    }

    #[test]
    fn codes_round_trip() {
        for s in Scalar::ALL {
            assert_eq!(Scalar::from_code(s.code()), Some(s));
        }
        assert_eq!(Scalar::from_code("O8"), None);
    }
}

#[cfg(feature = "ndarray")]
mod ndarray_impls {
    //! Conversions to and from `ndarray::ArrayD<T>` (feature `ndarray`).

    use super::{ByteOrder, DType, Element, NdArray, Order};
    use ndarray::{ArrayD, IxDyn, ShapeBuilder};

    impl NdArray {
        /// The array as an `ndarray::ArrayD<T>` with the same shape and layout
        /// (feature `ndarray`), or `None` when `T` is not the element type.
        ///
        /// ```
        /// use ecci_proto::pickle::{ByteOrder, DType, NdArray, Order, Scalar};
        /// let a = NdArray::new(DType::new(Scalar::U16, ByteOrder::Big), vec![2, 2], Order::F, vec![0, 1, 0, 2, 0, 3, 0, 4])?;
        /// let nd = a.to_ndarray::<u16>().unwrap();
        /// assert_eq!(nd[[0, 1]], 3); // column-major: (0,0)=1, (1,0)=2, (0,1)=3
        /// assert_eq!(NdArray::from(nd.clone()).to_ndarray::<u16>(), Some(nd));
        /// # Ok::<(), ecci_proto::pickle::NdArrayError>(())
        /// ```
        pub fn to_ndarray<T: Element>(&self) -> Option<ArrayD<T>> {
            let items = self.to_vec::<T>()?;
            let shape = IxDyn(self.shape());
            let shape = match self.order() {
                Order::C => shape.into_shape_with_order(),
                Order::F => shape.f(),
            };
            ArrayD::from_shape_vec(shape, items).ok()
        }
    }

    /// A C-order, little-endian array of the same shape and elements.
    impl<T: Element> From<ArrayD<T>> for NdArray {
        fn from(a: ArrayD<T>) -> Self {
            let mut data = Vec::with_capacity(a.len() * T::SCALAR.size());
            for &x in a.iter() {
                x.write_le(&mut data);
            }
            NdArray {
                dtype: DType::new(T::SCALAR, ByteOrder::Little),
                shape: a.shape().to_vec(),
                order: Order::C,
                data: data.into(),
            }
        }
    }
}
