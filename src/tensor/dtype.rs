//! Element types a tensor can hold, and the Rust types that back them.

use half::{bf16, f16};

use super::storage::CpuStorage;

/// The element type of a tensor.
///
/// f32 is the compute type; bf16 and f16 are storage types (checkpoints, GPU mixed
/// precision); f64 exists for high-precision references such as gradient checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// bfloat16 (8-bit exponent, 7-bit mantissa).
    BF16,
    /// IEEE half precision.
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::BF16 | DType::F16 => 2,
        }
    }

    /// Lower-case name as used on the command line (`f32`, `bf16`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
        }
    }

    /// Parses a name as printed by [`DType::name`].
    pub fn parse(name: &str) -> Option<DType> {
        match name.to_ascii_lowercase().as_str() {
            "f32" => Some(DType::F32),
            "f64" => Some(DType::F64),
            "bf16" => Some(DType::BF16),
            "f16" => Some(DType::F16),
            _ => None,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be the element of a CPU tensor.
pub trait Element: Copy + Send + Sync + bytemuck::Pod + 'static {
    /// The dtype this type stands for.
    const DTYPE: DType;
    /// Wraps a vector as CPU storage.
    fn into_storage(data: Vec<Self>) -> CpuStorage;
    /// Borrows the storage as a slice of this type, if the dtype matches.
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    /// Mutably borrows the storage as a slice of this type, if the dtype matches.
    fn slice_mut(storage: &mut CpuStorage) -> Option<&mut [Self]>;
    /// Converts to f64 (exact for every supported type).
    fn to_f64(self) -> f64;
    /// Converts from f64, rounding to nearest.
    fn from_f64(v: f64) -> Self;
}

macro_rules! impl_element {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn into_storage(data: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(data)
            }
            fn slice(storage: &CpuStorage) -> Option<&[Self]> {
                match storage {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(storage: &mut CpuStorage) -> Option<&mut [Self]> {
                match storage {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn to_f64(self) -> f64 {
                ($to)(self)
            }
            fn from_f64(v: f64) -> Self {
                ($from)(v)
            }
        }
    };
}

impl_element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
impl_element!(f64, F64, |x: f64| x, |v: f64| v);
impl_element!(bf16, BF16, |x: bf16| x.to_f64(), bf16::from_f64);
impl_element!(f16, F16, |x: f16| x.to_f64(), f16::from_f64);
