//! Fully connected layer Y = X·Wᵀ + b.

use super::cache::Cache;
use super::init::Init;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use crate::error::Result;
use crate::ops::matmul::{linear, linear_backward};
use crate::tensor::Tensor;

/// A linear layer with weight `[out, in]` (PyTorch layout) and an optional bias `[out]`,
/// named `{name}.weight` / `{name}.bias`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight `[out_features, in_features]`.
    pub weight: Param,
    /// Bias `[out_features]`, if any.
    pub bias: Option<Param>,
    cache: Cache<Tensor>,
}

impl Linear {
    /// A new layer with N(0, std²) weights and a zero bias.
    pub fn new(
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: &Init,
    ) -> Self {
        let w = format!("{name}.weight");
        Linear {
            weight: Param::new(&w, init.normal(&w, &[out_features, in_features])),
            bias: bias
                .then(|| Param::new(format!("{name}.bias"), init.constant(&[out_features], 0.0))),
            cache: Cache::new(name),
        }
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.value.dims()[1]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.value.dims()[0]
    }

    /// Applies the layer to `x [.., in]`; in training mode keeps `x` for the backward.
    pub fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = linear(x, &self.weight.value, self.bias.as_ref().map(|b| &b.value))?;
        if mode.is_train() {
            self.cache.push(x.clone());
        }
        Ok(y)
    }

    /// Back-propagates `dy`: accumulates weight/bias gradients, returns dX.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let x = self.cache.pop()?;
        linear_backward(
            &x,
            &self.weight.value,
            dy,
            &mut self.weight.grad,
            self.bias.as_mut().map(|b| &mut b.grad),
        )
    }
}

impl Module for Linear {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.weight);
        if let Some(b) = &self.bias {
            f(b);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.weight);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }
}
