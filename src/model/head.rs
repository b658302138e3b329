//! The VQA answer head: Linear(h→2h), LayerNorm(2h) and GELU in ViLT's or LXMERT's
//! order, then Linear(2h→answers), with HF parameter names.

use crate::error::Result;
use crate::nn::{Cache, Init, LayerNorm, Linear, Mode, Module, Param};
use crate::ops::elementwise::{gelu, gelu_backward};
use crate::tensor::Tensor;

/// Which model's head: the order of LayerNorm and GELU, the names and the LayerNorm eps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadLayout {
    /// ViLT `classifier`: Linear `.0` → LayerNorm `.1` (eps 1e-5) → GELU → Linear `.3`.
    Vilt,
    /// LXMERT `answer_head.logit_fc`: Linear `.0` → GELU → LayerNorm `.2` (eps 1e-12) →
    /// Linear `.3`.
    Lxmert,
}

impl HeadLayout {
    /// The index of the LayerNorm inside the HF `nn.Sequential`, and its epsilon.
    fn norm(self) -> (usize, f64) {
        match self {
            HeadLayout::Vilt => (1, 1e-5),
            HeadLayout::Lxmert => (2, 1e-12),
        }
    }
}

/// The answer classifier over the pooled output `[B, h]`, returning logits
/// `[B, answers]`.
#[derive(Debug, Clone)]
pub struct AnswerHead {
    /// Which order and names.
    pub layout: HeadLayout,
    /// `{prefix}.0`: h → 2h.
    pub dense: Linear,
    /// `{prefix}.1` (ViLT) or `{prefix}.2` (LXMERT) over 2h.
    pub norm: LayerNorm,
    /// `{prefix}.3`: 2h → answers.
    pub output: Linear,
    /// The GELU inputs of the training forward calls.
    cache: Cache<Tensor>,
}

impl AnswerHead {
    /// A new head named `prefix` (`classifier` for ViLT, `answer_head.logit_fc` for
    /// LXMERT).
    pub fn new(
        prefix: &str,
        layout: HeadLayout,
        hidden: usize,
        answers: usize,
        init: &Init,
    ) -> Self {
        let (norm_index, eps) = layout.norm();
        AnswerHead {
            layout,
            dense: Linear::new(&format!("{prefix}.0"), hidden, 2 * hidden, true, init),
            norm: LayerNorm::new(&format!("{prefix}.{norm_index}"), 2 * hidden, eps, init),
            output: Linear::new(&format!("{prefix}.3"), 2 * hidden, answers, true, init),
            cache: Cache::new(prefix),
        }
    }

    /// Logits `[B, answers]` of `pooled [B, h]`.
    pub fn forward(&mut self, pooled: &Tensor, mode: Mode) -> Result<Tensor> {
        let d = self.dense.forward(pooled, mode)?;
        let h = match self.layout {
            HeadLayout::Vilt => {
                let n = self.norm.forward(&d, mode)?;
                let g = gelu(&n)?;
                self.keep(n, mode);
                g
            }
            HeadLayout::Lxmert => {
                let g = gelu(&d)?;
                self.keep(d, mode);
                self.norm.forward(&g, mode)?
            }
        };
        self.output.forward(&h, mode)
    }

    /// Keeps the GELU input for the backward pass in training mode.
    fn keep(&mut self, gelu_input: Tensor, mode: Mode) {
        if mode.is_train() {
            self.cache.push(gelu_input);
        }
    }

    /// Back-propagates `dlogits`; returns the pooled-output gradient `[B, h]`.
    pub fn backward(&mut self, dlogits: &Tensor) -> Result<Tensor> {
        let gelu_input = self.cache.pop()?;
        let dh = self.output.backward(dlogits)?;
        let dd = match self.layout {
            HeadLayout::Vilt => self.norm.backward(&gelu_backward(&gelu_input, &dh)?)?,
            HeadLayout::Lxmert => gelu_backward(&gelu_input, &self.norm.backward(&dh)?)?,
        };
        self.dense.backward(&dd)
    }
}

impl Module for AnswerHead {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.dense.visit_params(f);
        self.norm.visit_params(f);
        self.output.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.dense.visit_params_mut(f);
        self.norm.visit_params_mut(f);
        self.output.visit_params_mut(f);
    }
}
