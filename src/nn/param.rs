//! A named trainable tensor and its gradient buffer.

use crate::device::Device;
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
}

impl Param {
    /// A parameter with the given value and a zero gradient.
    pub fn new(name: impl Into<String>, value: Tensor) -> Param {
        let grad = Tensor::zeros(value.shape().clone(), value.dtype(), value.device());
        Param {
            name: name.into(),
            value,
            grad,
        }
    }

    /// Sets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad = Tensor::zeros(self.value.shape().clone(), self.value.dtype(), Device::Cpu);
    }

    /// Converts value and gradient to `dtype`.
    pub fn to_dtype(&mut self, dtype: DType) {
        self.value = self.value.to_dtype(dtype);
        self.grad = self.grad.to_dtype(dtype);
    }
}
