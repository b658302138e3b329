//! The tensor type: a shape, a dtype and device storage.
//!
//! Tensors are plain values (clone = deep copy). Ops in [`crate::ops`] read them through
//! typed slices on the CPU; later devices add storage variants without changing this API.

mod dtype;
mod float;
mod shape;
mod storage;

pub use dtype::{DType, Element};
pub(crate) use float::with_float;
pub use float::Float;
pub use shape::Shape;
pub use storage::{CpuStorage, GpuStorage, Storage};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// An n-dimensional row-major array on some device.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    shape: Shape,
    storage: Storage,
}

impl Tensor {
    /// A CPU tensor from a vector; fails when the length does not match the shape.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::shape(
                "Tensor::from_vec",
                format!(
                    "{} elements do not fill shape {shape} ({} elements)",
                    data.len(),
                    shape.numel()
                ),
            ));
        }
        Ok(Tensor {
            shape,
            storage: Storage::Cpu(T::into_storage(data)),
        })
    }

    /// A CPU tensor from existing CPU storage; fails when the length does not match.
    pub fn from_storage(storage: CpuStorage, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if storage.len() != shape.numel() {
            return Err(Error::shape(
                "Tensor::from_storage",
                format!(
                    "{} elements do not fill shape {shape} ({} elements)",
                    storage.len(),
                    shape.numel()
                ),
            ));
        }
        Ok(Tensor {
            shape,
            storage: Storage::Cpu(storage),
        })
    }

    /// A CPU tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        let shape = shape.into();
        let storage = Storage::Cpu(CpuStorage::zeros(dtype, shape.numel()));
        Tensor { shape, storage }
    }

    /// A CPU tensor with every element equal to `value`.
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
        let shape = shape.into();
        let data = vec![value; shape.numel()];
        let storage = CpuStorage::F64(data).to_dtype(dtype);
        Tensor {
            shape,
            storage: Storage::Cpu(storage),
        }
    }

    /// A CPU tensor of normal samples N(0, std²) from a seeded generator.
    pub fn randn(shape: impl Into<Shape>, std: f64, seed: u64, dtype: DType) -> Tensor {
        let shape = shape.into();
        let mut rng = Rng::new(seed);
        let data: Vec<f64> = (0..shape.numel()).map(|_| rng.normal() * std).collect();
        Tensor {
            shape,
            storage: Storage::Cpu(CpuStorage::F64(data).to_dtype(dtype)),
        }
    }

    /// A CPU tensor of uniform samples in `[lo, hi)` from a seeded generator.
    pub fn uniform(shape: impl Into<Shape>, lo: f64, hi: f64, seed: u64, dtype: DType) -> Tensor {
        let shape = shape.into();
        let mut rng = Rng::new(seed);
        let data: Vec<f64> = (0..shape.numel())
            .map(|_| lo + (hi - lo) * rng.uniform())
            .collect();
        Tensor {
            shape,
            storage: Storage::Cpu(CpuStorage::F64(data).to_dtype(dtype)),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    /// The device holding the memory.
    pub fn device(&self) -> Device {
        self.storage.device()
    }

    /// The underlying storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The CPU storage, or an error when the tensor lives on a GPU device.
    pub fn cpu_storage(&self) -> Result<&CpuStorage> {
        match &self.storage {
            Storage::Cpu(s) => Ok(s),
            Storage::Gpu(g) => Err(on_gpu(g.buffer.device())),
        }
    }

    /// The GPU storage, or an error when the tensor lives on the CPU.
    pub fn gpu_storage(&self) -> Result<&GpuStorage> {
        match &self.storage {
            Storage::Gpu(g) => Ok(g),
            Storage::Cpu(_) => Err(Error::invalid(
                "this tensor lives on the CPU; move it with Tensor::to_device first",
            )),
        }
    }

    /// The GPU storage, mutably (kernels write outputs through it).
    pub fn gpu_storage_mut(&mut self) -> Result<&mut GpuStorage> {
        match &mut self.storage {
            Storage::Gpu(g) => Ok(g),
            Storage::Cpu(_) => Err(Error::invalid(
                "this tensor lives on the CPU; move it with Tensor::to_device first",
            )),
        }
    }

    /// A tensor of zeros on `device`.
    pub fn zeros_on(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        match device {
            Device::Cpu => Ok(Tensor::zeros(shape, dtype)),
            gpu => {
                let ctx = crate::gpu::GpuContext::get(gpu)?;
                let buffer = ctx.alloc_bytes(shape.numel() * dtype.size_in_bytes())?;
                Tensor::from_gpu(buffer, dtype, shape)
            }
        }
    }

    /// A GPU tensor around an existing buffer holding `numel` elements of `dtype`.
    pub fn from_gpu(
        buffer: crate::gpu::GpuBuffer,
        dtype: DType,
        shape: impl Into<Shape>,
    ) -> Result<Tensor> {
        let shape = shape.into();
        if buffer.len_bytes() < shape.numel() * dtype.size_in_bytes() {
            return Err(Error::shape(
                "Tensor::from_gpu",
                format!(
                    "a {}-byte buffer cannot hold {shape} {dtype} elements",
                    buffer.len_bytes()
                ),
            ));
        }
        Ok(Tensor {
            storage: Storage::Gpu(GpuStorage {
                buffer,
                dtype,
                len: shape.numel(),
            }),
            shape,
        })
    }

    /// A copy of this tensor on `device` (a plain clone when it is already there).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let host = match &self.storage {
            Storage::Cpu(s) => s.clone(),
            Storage::Gpu(g) => g.to_cpu()?,
        };
        let storage = match device {
            Device::Cpu => Storage::Cpu(host),
            gpu => Storage::Gpu(GpuStorage::from_cpu(&host, gpu)?),
        };
        Ok(Tensor {
            shape: self.shape.clone(),
            storage,
        })
    }

    /// The elements in host memory (read back from the device for GPU tensors).
    ///
    /// # Panics
    /// When reading a GPU buffer fails: a device fault, not a property of the input.
    fn host(&self) -> std::borrow::Cow<'_, CpuStorage> {
        match &self.storage {
            Storage::Cpu(s) => std::borrow::Cow::Borrowed(s),
            Storage::Gpu(g) => std::borrow::Cow::Owned(g.to_cpu().unwrap_or_else(|e| {
                panic!("reading a tensor back from {}: {e}", g.buffer.device())
            })),
        }
    }

    /// The elements as a typed slice; the dtype must be `T`'s and the tensor on the CPU.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let dtype = self.dtype();
        let s = self.cpu_storage()?;
        T::slice(s).ok_or(Error::DTypeMismatch {
            op: "Tensor::as_slice".into(),
            expected: T::DTYPE,
            found: dtype,
        })
    }

    /// The elements as a mutable typed slice; the dtype must be `T`'s and the tensor on
    /// the CPU.
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        let dtype = self.dtype();
        let s = match &mut self.storage {
            Storage::Cpu(s) => s,
            Storage::Gpu(g) => return Err(on_gpu(g.buffer.device())),
        };
        T::slice_mut(s).ok_or(Error::DTypeMismatch {
            op: "Tensor::as_mut_slice".into(),
            expected: T::DTYPE,
            found: dtype,
        })
    }

    /// A copy of the elements converted to f32 (read back from a GPU device if needed).
    pub fn to_vec_f32(&self) -> Vec<f32> {
        self.host().to_f32_vec()
    }

    /// A copy of the elements widened to f64 (read back from a GPU device if needed).
    pub fn to_vec_f64(&self) -> Vec<f64> {
        self.host().to_f64_vec()
    }

    /// A copy converted to `dtype`, on the same device.
    ///
    /// # Panics
    /// When a GPU tensor cannot be read back or written: a device fault.
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        let converted = Tensor {
            shape: self.shape.clone(),
            storage: Storage::Cpu(self.host().to_dtype(dtype)),
        };
        match self.device() {
            Device::Cpu => converted,
            device => converted
                .to_device(device)
                .unwrap_or_else(|e| panic!("converting a tensor on {device}: {e}")),
        }
    }

    /// The same elements under another shape with the same number of elements.
    pub fn reshape(self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::shape(
                "Tensor::reshape",
                format!("cannot view {} as {shape}", self.shape),
            ));
        }
        Ok(Tensor {
            shape,
            storage: self.storage,
        })
    }

    /// Fails with a shape error naming `op` unless the shape equals `expected`.
    pub fn expect_shape(&self, expected: &[usize], op: &str) -> Result<()> {
        if self.dims() == expected {
            Ok(())
        } else {
            Err(Error::shape(
                op,
                format!("expected {}, found {}", Shape::new(expected), self.shape),
            ))
        }
    }

    /// Fails with a dtype error naming `op` unless both tensors share a dtype.
    pub fn expect_same_dtype(&self, other: &Tensor, op: &str) -> Result<()> {
        if self.dtype() == other.dtype() {
            Ok(())
        } else {
            Err(Error::DTypeMismatch {
                op: op.into(),
                expected: self.dtype(),
                found: other.dtype(),
            })
        }
    }
}

/// The error for CPU-only access to a GPU tensor.
fn on_gpu(device: Device) -> Error {
    Error::invalid(format!(
        "this tensor lives on {device}; copy it with Tensor::to_device(Device::Cpu) first"
    ))
}
