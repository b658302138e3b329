//! Bottleneck adapters (DAS, Wu et al. 2023): `A(x) = W_up act(W_down LN(x)) + b_up`.
//!
//! A skip adapter replaces a skipped layer by `x + A(x)`; a parallel adapter adds `A(x)`
//! beside a kept sub-layer (see [`super::Residual`]). The up projection starts at zero,
//! so a fresh adapter contributes nothing: a skipped layer starts as the identity and a
//! parallel adapter leaves its layer unchanged. (The paper draws both projections from
//! N(0, 0.02); a zero up projection keeps the pre-trained function at the first step,
//! and its gradient is not zero, so training moves it at once.)

use super::cache::Cache;
use super::feed_forward::Activation;
use super::init::Init;
use super::layer_norm::LayerNorm;
use super::linear::Linear;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use crate::error::Result;
use crate::tensor::Tensor;

/// A bottleneck adapter named `{prefix}` with parameters `{prefix}.norm.{weight,bias}`,
/// `{prefix}.down.{weight,bias}` (`[r, h]`) and `{prefix}.up.{weight,bias}` (`[h, r]`).
#[derive(Debug, Clone)]
pub struct Adapter {
    /// LayerNorm on the adapter input.
    pub norm: LayerNorm,
    /// Down projection h → r.
    pub down: Linear,
    /// Up projection r → h, zero-initialised.
    pub up: Linear,
    /// The non-linearity between the projections (ReLU in DAS).
    pub activation: Activation,
    cache: Cache<Tensor>,
}

impl Adapter {
    /// A fresh adapter of `hidden → bottleneck → hidden` (ReLU, as in DAS).
    pub fn new(prefix: &str, hidden: usize, bottleneck: usize, eps: f64, init: &Init) -> Self {
        let mut up = Linear::new(&format!("{prefix}.up"), bottleneck, hidden, true, init);
        up.weight.value = init.constant(&[hidden, bottleneck], 0.0);
        Adapter {
            norm: LayerNorm::new(&format!("{prefix}.norm"), hidden, eps, init),
            down: Linear::new(&format!("{prefix}.down"), hidden, bottleneck, true, init),
            up,
            activation: Activation::Relu,
            cache: Cache::new(prefix),
        }
    }

    /// The bottleneck size r.
    pub fn bottleneck(&self) -> usize {
        self.down.out_features()
    }

    /// `A(x)` for `x [.., h]` (without the residual `x`).
    pub fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let n = self.norm.forward(x, mode)?;
        let pre = self.down.forward(&n, mode)?;
        let act = self.activation.forward(&pre)?;
        if mode.is_train() {
            self.cache.push(pre);
        }
        self.up.forward(&act, mode)
    }

    /// Back-propagates `dA`; returns the gradient of `x` through `A` only.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let pre = self.cache.pop()?;
        let dact = self.up.backward(dy)?;
        let dpre = self.activation.backward(&pre, &dact)?;
        let dn = self.down.backward(&dpre)?;
        self.norm.backward(&dn)
    }
}

impl Module for Adapter {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.norm.visit_params(f);
        self.down.visit_params(f);
        self.up.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.norm.visit_params_mut(f);
        self.down.visit_params_mut(f);
        self.up.visit_params_mut(f);
    }
}
