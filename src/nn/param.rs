//! A named trainable tensor and its gradient buffer.

use super::precision::Precision;
use super::trainable_mask::TrainableMask;
use crate::device::Device;
use crate::error::Result;
use crate::sparse::SparseFormat;
use crate::tensor::{DType, Tensor};

/// A parameter: a stable dotted name (HF-compatible where a model has one), its value,
/// and the gradient that backward passes accumulate into.
#[derive(Debug, Clone)]
pub struct Param {
    /// Stable dotted name, e.g. `encoder.layer.0.attention.self.query.weight`.
    pub name: String,
    /// The current value.
    pub value: Tensor,
    /// Accumulated ∂loss/∂value; same shape and dtype as `value`.
    pub grad: Tensor,
    /// The format a layer computes with this weight in (`Dense` unless pruned; only
    /// [`super::Linear`] weights honour other formats). The value itself stays dense, with
    /// exact zeros at pruned elements.
    pub format: SparseFormat,
    /// A trainable mask (mask training); only [`super::Linear`] weights honour it, and
    /// their layer then visits its scores as a parameter of their own.
    pub mask: Option<Box<TrainableMask>>,
    /// The precision a layer computes its products with this weight in on a GPU device
    /// (`F32` unless set; only [`super::Linear`] weights honour it). The value itself
    /// stays f32: it is the master weight.
    pub precision: Precision,
}

impl Param {
    /// A parameter with the given value and a zero gradient.
    pub fn new(name: impl Into<String>, value: Tensor) -> Param {
        let grad = Tensor::zeros(value.shape().clone(), value.dtype());
        Param {
            name: name.into(),
            value,
            grad,
            format: SparseFormat::Dense,
            mask: None,
            precision: Precision::F32,
        }
    }

    /// Sets the gradient to zero (on the value's device).
    pub fn zero_grad(&mut self) -> Result<()> {
        self.grad = Tensor::zeros_on(
            self.value.shape().clone(),
            self.value.dtype(),
            self.value.device(),
        )?;
        Ok(())
    }

    /// Moves value and gradient to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.value = self.value.to_device(device)?;
        self.grad = self.grad.to_device(device)?;
        Ok(())
    }

    /// Converts value and gradient to `dtype`.
    pub fn to_dtype(&mut self, dtype: DType) {
        self.value = self.value.to_dtype(dtype);
        self.grad = self.grad.to_dtype(dtype);
    }
}
