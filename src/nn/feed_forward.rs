//! Position-wise feed-forward network: Linear(h→f) → activation → Linear(f→h).

use super::cache::Cache;
use super::init::Init;
use super::linear::Linear;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use crate::error::Result;
use crate::ops::elementwise::{gelu, gelu_backward, relu, relu_backward};
use crate::tensor::Tensor;

/// The non-linearity between the two projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU, exact erf form (BERT, LXMERT, ViLT).
    Gelu,
    /// ReLU.
    Relu,
}

impl Activation {
    /// The activation of `x`.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Gelu => gelu(x),
            Activation::Relu => relu(x),
        }
    }

    /// The gradient through the activation at pre-activation `x`, given `dy`.
    pub fn backward(self, x: &Tensor, dy: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Gelu => gelu_backward(x, dy),
            Activation::Relu => relu_backward(x, dy),
        }
    }
}

/// Two-layer MLP applied to every token.
#[derive(Debug, Clone)]
pub struct FeedForward {
    /// Up projection h → f.
    pub intermediate: Linear,
    /// Down projection f → h.
    pub output: Linear,
    /// The activation.
    pub activation: Activation,
    cache: Cache<Tensor>,
}

impl FeedForward {
    /// A new FFN with projections named `intermediate` and `output`.
    pub fn new(
        intermediate: &str,
        output: &str,
        hidden: usize,
        ffn: usize,
        activation: Activation,
        init: &Init,
    ) -> Self {
        FeedForward {
            intermediate: Linear::new(intermediate, hidden, ffn, true, init),
            output: Linear::new(output, ffn, hidden, true, init),
            activation,
            cache: Cache::new(intermediate),
        }
    }

    /// Applies the FFN to `x [.., h]`.
    pub fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let pre = self.intermediate.forward(x, mode)?;
        let act = self.activation.forward(&pre)?;
        if mode.is_train() {
            self.cache.push(pre);
        }
        self.output.forward(&act, mode)
    }

    /// Back-propagates `dy`; returns dX.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let pre = self.cache.pop()?;
        let dact = self.output.backward(dy)?;
        let dpre = self.activation.backward(&pre, &dact)?;
        self.intermediate.backward(&dpre)
    }
}

impl Module for FeedForward {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.intermediate.visit_params(f);
        self.output.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.intermediate.visit_params_mut(f);
        self.output.visit_params_mut(f);
    }
}
