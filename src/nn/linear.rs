//! Fully connected layer Y = X·Wᵀ + b, with the weight stored dense or, once pruned, in any
//! sparse format (masked, CSR, BSR, 2:4) for the products.

use std::sync::Arc;

use super::cache::Cache;
use super::init::Init;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use super::precision::Precision;
use crate::error::Result;
use crate::ops::matmul::{linear, linear_backward};
use crate::ops::mixed::{linear_bf16, linear_bf16_backward, to_bf16};
use crate::ops::sparse_linear::{sparse_linear, sparse_linear_backward};
use crate::sparse::linear::SparseLinear;
use crate::sparse::{Dense, SparseFormat, SparseMatrix, SparseStats};
use crate::tensor::{DType, Tensor};

/// A linear layer with weight `[out, in]` (PyTorch layout) and an optional bias `[out]`,
/// named `{name}.weight` / `{name}.bias`.
///
/// The parameter always holds the dense weight (pruned elements are exact zeros), which is
/// what checkpoints and optimizers see. With a sparse format on the weight
/// ([`Param::format`], set by [`Linear::set_format`] or by anyone visiting the parameters),
/// CPU products run on a [`SparseLinear`] built from it; the snapshot is rebuilt lazily
/// whenever the parameters may have changed (after any `visit_params_mut`, e.g. an
/// optimizer step). On GPU devices the dense weight (with its zeros) is used.
///
/// With a [`super::TrainableMask`] on the weight ([`Param::mask`]), the layer computes
/// with the masked weight, visits the scores after the weight, and its backward trains
/// the scores instead of the weight (see `nn/trainable_mask.rs`).
///
/// With [`Precision::Bf16`] on the weight ([`Param::precision`]) and no trainable mask,
/// products on a GPU device run in bf16 mixed precision (`crate::ops::mixed`): the layer
/// keeps a bf16 copy of the f32 weight, made lazily and dropped like the sparse snapshot,
/// rounds its input to bf16 (and keeps that bf16 input for the backward), and the
/// gradients it accumulates stay f32.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight `[out_features, in_features]`.
    pub weight: Param,
    /// Bias `[out_features]`, if any.
    pub bias: Option<Param>,
    kernel: Option<Arc<SparseLinear>>,
    /// The bf16 copy of the weight for mixed-precision products (None until needed).
    half: Option<Tensor>,
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
            kernel: None,
            half: None,
            cache: Cache::new(name),
        }
    }

    /// Stores the weight in `format` for the products; its exact zeros are the pruned
    /// elements. Fails (leaving the layer unchanged) when the weight does not fit the
    /// format, e.g. more than 2 non-zeros in a group of 4 for 2:4.
    pub fn set_format(&mut self, format: SparseFormat) -> Result<()> {
        let kernel = match format {
            SparseFormat::Dense => None,
            _ => Some(self.build_kernel(format)?),
        };
        self.weight.format = format;
        self.kernel = kernel;
        Ok(())
    }

    /// The format the products use.
    pub fn format(&self) -> SparseFormat {
        self.weight.format
    }

    /// Sparsity statistics of the weight in its format.
    pub fn sparse_stats(&self) -> Result<SparseStats> {
        let dense = Dense::from_tensor(&self.weight.value)?;
        Ok(SparseMatrix::from_dense(self.weight.format, dense)?.stats())
    }

    fn build_kernel(&self, format: SparseFormat) -> Result<Arc<SparseLinear>> {
        let dense = Dense::from_tensor(&self.weight.value)?;
        let matrix = SparseMatrix::from_dense(format, dense)?;
        Ok(Arc::new(SparseLinear::new(&matrix)?))
    }

    /// The sparse kernel for a CPU input, rebuilt if the weight may have changed; None for
    /// dense weights or GPU inputs.
    fn sparse_kernel(&mut self, x: &Tensor) -> Result<Option<Arc<SparseLinear>>> {
        let format = self.weight.format;
        if format == SparseFormat::Dense || x.device().is_gpu() {
            return Ok(None);
        }
        if self
            .kernel
            .as_ref()
            .is_none_or(|k| k.matrix().format() != format)
        {
            self.kernel = Some(self.build_kernel(format)?);
        }
        Ok(self.kernel.clone())
    }

    /// Whether products with the GPU input `x` run in bf16 mixed precision.
    fn mixed(&self, x: &Tensor) -> bool {
        self.weight.precision == Precision::Bf16
            && self.weight.mask.is_none()
            && x.device().is_gpu()
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
        if let Some(mask) = self.weight.mask.as_deref_mut() {
            let bias = self.bias.as_ref().map(|b| &b.value);
            let y = mask.forward(&self.weight.value, self.weight.format, x, bias)?;
            if mode.is_train() {
                self.cache.push(x.clone());
            }
            return Ok(y);
        }
        if self.mixed(x) {
            let x16 = to_bf16(x)?;
            let w16 = half_weight(&mut self.half, &self.weight.value)?;
            let y = linear_bf16(&x16, w16, self.bias.as_ref().map(|b| &b.value))?;
            if mode.is_train() {
                self.cache.push(x16);
            }
            return Ok(y);
        }
        let kernel = self.sparse_kernel(x)?;
        let bias = self.bias.as_ref().map(|b| &b.value);
        let y = match kernel {
            Some(kernel) => sparse_linear(x, &kernel, bias)?,
            None => linear(x, &self.weight.value, bias)?,
        };
        if mode.is_train() {
            self.cache.push(x.clone());
        }
        Ok(y)
    }

    /// Back-propagates `dy`: accumulates weight/bias gradients, returns dX. With a sparse
    /// format only the format's stored pattern receives weight gradient (CSR entries, whole
    /// stored BSR blocks, the two 2:4 slots per group); everything outside it gets none.
    pub fn backward(&mut self, dy: &Tensor) -> Result<Tensor> {
        let x = self.cache.pop()?;
        if let Some(mask) = self.weight.mask.as_deref_mut() {
            let db = self.bias.as_mut().map(|b| &mut b.grad);
            return mask.backward(&self.weight.value, self.weight.format, &x, dy, db);
        }
        if x.dtype() == DType::BF16 {
            // The forward ran in mixed precision and kept its bf16 input.
            let w16 = half_weight(&mut self.half, &self.weight.value)?;
            let db = self.bias.as_mut().map(|b| &mut b.grad);
            return linear_bf16_backward(&x, w16, dy, &mut self.weight.grad, db);
        }
        let kernel = self.sparse_kernel(&x)?;
        let db = self.bias.as_mut().map(|b| &mut b.grad);
        match kernel {
            Some(kernel) => sparse_linear_backward(&x, &kernel, dy, &mut self.weight.grad, db),
            None => linear_backward(&x, &self.weight.value, dy, &mut self.weight.grad, db),
        }
    }
}

/// The bf16 copy of `weight` in `half`, made first if there is none.
fn half_weight<'a>(half: &'a mut Option<Tensor>, weight: &Tensor) -> Result<&'a Tensor> {
    let copy = match half.take() {
        Some(copy) => copy,
        None => to_bf16(weight)?,
    };
    Ok(half.insert(copy))
}

impl Module for Linear {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.weight);
        if let Some(mask) = &self.weight.mask {
            f(&mask.scores);
        }
        if let Some(b) = &self.bias {
            f(b);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.kernel = None;
        self.half = None;
        f(&mut self.weight);
        if let Some(mask) = self.weight.mask.as_deref_mut() {
            mask.invalidate();
            f(&mut mask.scores);
        }
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }
}
