//! Layer normalisation over the last dimension with a learned scale and shift.

use super::cache::Cache;
use super::init::Init;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use crate::error::Result;
use crate::ops::layernorm::{layer_norm, layer_norm_backward, LayerNormSaved};
use crate::tensor::Tensor;

/// LayerNorm with `{name}.weight` (γ, ones) and `{name}.bias` (β, zeros).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale γ `[dim]`.
    pub weight: Param,
    /// Shift β `[dim]`.
    pub bias: Param,
    /// Added to the variance (1e-12 in BERT/LXMERT/ViLT).
    pub eps: f64,
    cache: Cache<(Tensor, LayerNormSaved)>,
}

impl LayerNorm {
    /// A new LayerNorm over `dim` features.
    pub fn new(name: &str, dim: usize, eps: f64, init: &Init) -> Self {
        LayerNorm {
            weight: Param::new(format!("{name}.weight"), init.constant(&[dim], 1.0)),
            bias: Param::new(format!("{name}.bias"), init.constant(&[dim], 0.0)),
            eps,
            cache: Cache::new(name),
        }
    }

    /// Normalises `x [.., dim]`.
    pub fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (y, saved) = layer_norm(x, &self.weight.value, &self.bias.value, self.eps)?;
        if mode.is_train() {
            self.cache.push((x.clone(), saved));
        }
        Ok(y)
    }

    /// Back-propagates `dy`: accumulates γ/β gradients, returns dX.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let (x, saved) = self.cache.pop()?;
        layer_norm_backward(
            &x,
            &self.weight.value,
            &saved,
            dy,
            &mut self.weight.grad,
            &mut self.bias.grad,
        )
    }
}

impl Module for LayerNorm {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.weight);
        f(&self.bias);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.weight);
        f(&mut self.bias);
    }
}
