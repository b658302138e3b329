//! Trainable masks for mask training (Si et al. 2023): a real-valued score per weight
//! element (or per `b × b` block) and a threshold φ; the layer computes with
//! `W ⊙ 1[m̂ > φ]`.
//!
//! A [`TrainableMask`] rides on a [`Linear`](super::Linear) weight's [`Param::mask`]; the
//! layer then visits its scores as an ordinary parameter named `{weight}.mask_scores`
//! (so an optimizer trains them) and routes its products here:
//! - forward: the masked weight in the weight's sparse format (dense → the dense kernel)
//!   through [`SparseLinear`];
//! - backward: dX through the same sparse kernel; the straight-through score gradient
//!   `∂L/∂m̂ := ∂L/∂m = ∂L/∂(W ⊙ m) ⊙ W` at EVERY entry (pruned ones too, so they can come
//!   back), with `∂L/∂(W ⊙ m) = dYᵀ·X` from the SDDMM of
//!   [`SparseLinear::weight_grad`] on the full (all-ones, dense) pattern; block scores
//!   sum their block's entries. The weight itself gets no gradient (it is frozen).
//!
//! Only CPU f32 products are supported while a mask is attached.

use std::sync::Arc;

use super::param::Param;
use crate::error::{Error, Result};
use crate::ops::elementwise::{bias_add, bias_add_backward};
use crate::sparse::{Dense, SparseFormat, SparseLinear, SparseMatrix};
use crate::tensor::{DType, Tensor};

/// Suffix of a score parameter's name: `{weight name}.mask_scores`.
pub const SCORES_SUFFIX: &str = ".mask_scores";

/// Whether a parameter is a mask-score matrix (never saved in `model.safetensors`).
pub fn is_mask_scores(name: &str) -> bool {
    name.ends_with(SCORES_SUFFIX)
}

/// The index of the `block × block` unit (row-major over `⌈rows/b⌉ × ⌈cols/b⌉`) holding
/// element `i` (row-major) of a `[rows, cols]` matrix; `block` 1 is the element itself.
pub fn unit_of(i: usize, shape: [usize; 2], block: usize) -> usize {
    let cols = shape[1];
    (i / cols / block) * cols.div_ceil(block) + (i % cols) / block
}

/// Expands one flag per `block × block` unit to one flag per element of `shape`.
pub fn expand_units(units: &[bool], shape: [usize; 2], block: usize) -> Vec<bool> {
    (0..shape[0] * shape[1])
        .map(|i| units[unit_of(i, shape, block)])
        .collect()
}

/// The score matrix and threshold of one weight `[rows, cols]`.
#[derive(Debug, Clone)]
pub struct TrainableMask {
    /// Scores m̂: `[rows, cols]` (element) or `[⌈rows/b⌉, ⌈cols/b⌉]` (block `b`).
    pub scores: Param,
    /// The threshold φ: a score unit is kept when its score is `> φ`.
    pub threshold: f32,
    /// Score granularity: 1 (element) or the block size.
    pub block: usize,
    /// Target number of kept score units (elements or blocks).
    pub keep: usize,
    rows: usize,
    cols: usize,
    kernel: Option<Arc<SparseLinear>>,
    grad_kernel: Option<Arc<SparseLinear>>,
}

impl TrainableMask {
    /// Magnitude initialisation from a keep pattern over score units (row-major over the
    /// score matrix): m̂ = α·φ where kept, 0 where pruned; `keep` = the kept count.
    pub fn from_pattern(
        weight_name: &str,
        shape: [usize; 2],
        block: usize,
        kept: &[bool],
        threshold: f32,
        alpha: f32,
    ) -> Result<TrainableMask> {
        let [rows, cols] = shape;
        if block == 0 {
            return Err(Error::invalid(format!(
                "{weight_name}: mask block size must be at least 1"
            )));
        }
        let dims = [rows.div_ceil(block), cols.div_ceil(block)];
        if kept.len() != dims[0] * dims[1] {
            return Err(Error::shape(
                "TrainableMask::from_pattern",
                format!(
                    "{weight_name}: {} keep flags for a {} x {} score matrix",
                    kept.len(),
                    dims[0],
                    dims[1]
                ),
            ));
        }
        let values: Vec<f32> = kept
            .iter()
            .map(|&k| if k { alpha * threshold } else { 0.0 })
            .collect();
        Ok(TrainableMask {
            scores: Param::new(
                format!("{weight_name}{SCORES_SUFFIX}"),
                Tensor::from_vec(values, dims)?,
            ),
            threshold,
            block,
            keep: kept.iter().filter(|&&k| k).count(),
            rows,
            cols,
            kernel: None,
            grad_kernel: None,
        })
    }

    /// The scores as a slice (errors unless f32 on the CPU).
    fn score_values(&self) -> Result<&[f32]> {
        self.scores.value.as_slice::<f32>()
    }

    /// Which score units are kept now: `m̂ > φ`.
    pub fn kept_units(&self) -> Result<Vec<bool>> {
        Ok(self
            .score_values()?
            .iter()
            .map(|&s| s > self.threshold)
            .collect())
    }

    /// The element keep mask `[rows, cols]` (row-major), blocks expanded.
    pub fn element_mask(&self) -> Result<Vec<bool>> {
        Ok(expand_units(
            &self.kept_units()?,
            [self.rows, self.cols],
            self.block,
        ))
    }

    /// Resets φ so exactly `keep` score units lie above it: φ = the (n − keep)-th smallest
    /// score. Scores tied with φ that must be kept (ties broken by index: later units are
    /// kept) are raised by one ulp so the count is exact.
    pub fn reset_threshold(&mut self) -> Result<()> {
        let name = self.scores.name.clone();
        let keep = self.keep;
        let scores = self.scores.value.as_mut_slice::<f32>()?;
        if scores.iter().any(|s| s.is_nan()) {
            return Err(Error::invalid(format!("{name}: a mask score is NaN")));
        }
        let n = scores.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
        self.threshold = match n - keep {
            0 => f32::NEG_INFINITY,
            pruned => {
                let phi = scores[order[pruned - 1]];
                for &i in &order[pruned..] {
                    if scores[i] <= phi {
                        scores[i] = phi.next_up();
                    }
                }
                phi
            }
        };
        self.kernel = None;
        Ok(())
    }

    /// Drops the cached kernels (the scores or threshold may have changed).
    pub(crate) fn invalidate(&mut self) {
        self.kernel = None;
    }

    /// The masked weight's kernel in `format`, built when missing.
    fn masked_kernel(
        &mut self,
        weight: &Tensor,
        format: SparseFormat,
    ) -> Result<Arc<SparseLinear>> {
        if let Some(k) = &self.kernel {
            return Ok(k.clone());
        }
        let mask = self.element_mask()?;
        let values: Vec<f32> = weight
            .as_slice::<f32>()?
            .iter()
            .zip(&mask)
            .map(|(&w, &m)| if m { w } else { 0.0 })
            .collect();
        let dense = Dense::new(values, self.rows, self.cols)?;
        let kernel = Arc::new(SparseLinear::new(&SparseMatrix::from_dense(
            format, dense,
        )?)?);
        self.kernel = Some(kernel.clone());
        Ok(kernel)
    }

    /// Checks `x` is an f32 CPU input; returns its row count.
    fn check_input(&self, x: &Tensor, op: &str) -> Result<usize> {
        if x.device().is_gpu() || x.dtype() != DType::F32 {
            return Err(Error::invalid(format!(
                "{op} ({}): trainable masks run on f32 CPU tensors (got {} on {})",
                self.scores.name,
                x.dtype(),
                x.device()
            )));
        }
        if x.shape().rank() == 0 || x.shape().last_dim() != self.cols {
            return Err(Error::shape(
                op,
                format!(
                    "{}: input {} does not end in in_features {}",
                    self.scores.name,
                    x.shape(),
                    self.cols
                ),
            ));
        }
        Ok(x.shape().rows())
    }

    /// `x · (W ⊙ m)ᵀ (+ bias)` with the masked weight in `format`.
    pub(crate) fn forward(
        &mut self,
        weight: &Tensor,
        format: SparseFormat,
        x: &Tensor,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let tokens = self.check_input(x, "masked linear forward")?;
        let kernel = self.masked_kernel(weight, format)?;
        let mut y = vec![0f32; tokens * self.rows];
        kernel.forward(x.as_slice::<f32>()?, tokens, &mut y)?;
        let y = Tensor::from_vec(y, x.shape().with_last_dim(self.rows))?;
        match bias {
            Some(b) => bias_add(&y, b),
            None => Ok(y),
        }
    }

    /// Backward of [`TrainableMask::forward`]: accumulates the straight-through score
    /// gradient and `db`; returns dX (through the masked sparse kernel).
    pub(crate) fn backward(
        &mut self,
        weight: &Tensor,
        format: SparseFormat,
        x: &Tensor,
        dy: &Tensor,
        db: Option<&mut Tensor>,
    ) -> Result<Tensor> {
        let tokens = self.check_input(x, "masked linear backward")?;
        dy.expect_shape(
            x.shape().with_last_dim(self.rows).dims(),
            "masked linear backward (dY)",
        )?;
        if let Some(db) = db {
            bias_add_backward(dy, db)?;
        }
        let (xs, dys) = (x.as_slice::<f32>()?, dy.as_slice::<f32>()?);
        let full = match &self.grad_kernel {
            Some(k) => k.clone(),
            None => {
                let zeros = Dense::new(vec![0.0; self.rows * self.cols], self.rows, self.cols)?;
                let k = Arc::new(SparseLinear::new(&SparseMatrix::Dense(zeros))?);
                self.grad_kernel = Some(k.clone());
                k
            }
        };
        let d_eff = full.weight_grad(xs, dys, tokens)?.to_dense();
        let (shape, block) = ([self.rows, self.cols], self.block);
        let ws = weight.as_slice::<f32>()?;
        let grad = self.scores.grad.as_mut_slice::<f32>()?;
        for (i, (g, w)) in d_eff.values().iter().zip(ws).enumerate() {
            grad[unit_of(i, shape, block)] += g * w;
        }
        let kernel = self.masked_kernel(weight, format)?;
        let mut dx = vec![0f32; tokens * self.cols];
        kernel.backward_input(dys, tokens, &mut dx)?;
        Tensor::from_vec(dx, x.shape().clone())
    }
}
