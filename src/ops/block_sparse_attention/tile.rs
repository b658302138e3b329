//! Per-tile softmax arithmetic of block-sparse attention: logits of a score tile, the
//! online-softmax update of the forward pass, and the probabilities and score gradients
//! the backward pass recomputes.
//!
//! A tile is one (query block, key block) pair: `rows × cols` scores, row-major and
//! contiguous. Every function is `#[inline(always)]` so it is compiled at the SIMD level
//! of the `vectorized` caller.

use crate::ops::elementwise::sum_map;
use crate::ops::softmax::row_max;
use crate::tensor::Float;

/// Below this exponent, e^x counts as exactly 0 (the fast f32 exp would return a tiny
/// subnormal-range value instead).
const EXP_FLUSH: f64 = -87.0;

/// e^x, exactly 0 for x below [`EXP_FLUSH`] (so −∞ gives 0 and masked pairs get no
/// weight at all).
#[inline(always)]
fn exp_or_zero<T: Float>(x: T) -> T {
    let e = x.exp();
    if x < T::of(EXP_FLUSH) {
        T::ZERO
    } else {
        e
    }
}

/// What turns raw products Q·Kᵀ of a tile into logits.
#[derive(Clone, Copy)]
pub(super) struct TileMask<'a, T> {
    /// 1/√D.
    pub scale: T,
    /// The additive key mask of the tile's key columns, if any.
    pub keys: Option<&'a [T]>,
    /// The layout's element mask of the tile (`block × block` row-major), if any.
    pub elements: Option<&'a [bool]>,
    /// The layout's block size (row stride of `elements`).
    pub block: usize,
}

/// Logits in place: `s·scale + key mask`, and −∞ where the element mask forbids a pair.
#[inline(always)]
pub(super) fn logits<T: Float>(s: &mut [T], cols: usize, mask: TileMask<'_, T>) {
    let neg_inf = T::of(f64::NEG_INFINITY);
    for (r, row) in s.chunks_exact_mut(cols).enumerate() {
        match mask.keys {
            Some(km) => {
                for (x, &m) in row.iter_mut().zip(km) {
                    *x = *x * mask.scale + m;
                }
            }
            None => {
                for x in row.iter_mut() {
                    *x *= mask.scale;
                }
            }
        }
        if let Some(em) = mask.elements {
            let allowed = &em[r * mask.block..r * mask.block + cols];
            for (x, &ok) in row.iter_mut().zip(allowed) {
                if !ok {
                    *x = neg_inf;
                }
            }
        }
    }
}

/// Running softmax state of the rows of one query block.
pub(super) struct OnlineSoftmax<T> {
    /// Running maximum logit per row (−∞ before any allowed key).
    pub max: Vec<T>,
    /// Running Σ e^(logit − max) per row.
    pub sum: Vec<T>,
}

impl<T: Float> OnlineSoftmax<T> {
    /// State for up to `rows` rows.
    pub fn new(rows: usize) -> Self {
        OnlineSoftmax {
            max: vec![T::ZERO; rows],
            sum: vec![T::ZERO; rows],
        }
    }

    /// Resets the first `rows` rows before a new query block.
    #[inline(always)]
    pub fn reset(&mut self, rows: usize) {
        self.max[..rows].fill(T::of(f64::NEG_INFINITY));
        self.sum[..rows].fill(T::ZERO);
    }

    /// Folds a tile of logits into the state: replaces the tile by its unnormalised
    /// probabilities e^(logit − new max) and rescales the accumulated output rows `out`
    /// (`d` values per row) to the new maxima.
    #[inline(always)]
    pub fn absorb(&mut self, tile: &mut [T], cols: usize, out: &mut [T], d: usize) {
        let neg_inf = T::of(f64::NEG_INFINITY);
        for (r, row) in tile.chunks_exact_mut(cols).enumerate() {
            let new_max = self.max[r].max(row_max(row));
            if new_max == neg_inf {
                // No allowed key in this row so far: nothing to add.
                row.fill(T::ZERO);
                continue;
            }
            for x in row.iter_mut() {
                *x = exp_or_zero(*x - new_max);
            }
            let sum = sum_map(row, |x| x);
            if new_max > self.max[r] {
                let alpha = exp_or_zero(self.max[r] - new_max);
                self.sum[r] *= alpha;
                for o in &mut out[r * d..(r + 1) * d] {
                    *o *= alpha;
                }
                self.max[r] = new_max;
            }
            self.sum[r] += sum;
        }
    }

    /// Normalises the output rows and returns each row's log-sum-exp into `lse`; a row
    /// without any allowed key gets output 0 and log-sum-exp +∞ (so the probabilities
    /// the backward pass recomputes from it are 0).
    #[inline(always)]
    pub fn finish(&self, out: &mut [T], d: usize, lse: &mut [T]) {
        for (r, l) in lse.iter_mut().enumerate() {
            let row = &mut out[r * d..(r + 1) * d];
            if self.sum[r] > T::ZERO {
                let inv = T::ONE / self.sum[r];
                for o in row.iter_mut() {
                    *o *= inv;
                }
                *l = self.max[r] + self.sum[r].ln();
            } else {
                row.fill(T::ZERO);
                *l = T::of(f64::INFINITY);
            }
        }
    }
}

/// Probabilities in place from logits: `p = e^(logit − lse_row)`.
#[inline(always)]
pub(super) fn probabilities<T: Float>(tile: &mut [T], cols: usize, lse: &[T]) {
    for (row, &l) in tile.chunks_exact_mut(cols).zip(lse) {
        for x in row.iter_mut() {
            *x = exp_or_zero(*x - l);
        }
    }
}

/// Score gradients in place: `dS = P ∘ (dP − δ_row) · scale`, where `dp` holds dP on
/// entry and δ = Σ_d dO·O per row.
#[inline(always)]
pub(super) fn score_gradients<T: Float>(dp: &mut [T], p: &[T], cols: usize, delta: &[T], scale: T) {
    for ((g, pr), &dl) in dp
        .chunks_exact_mut(cols)
        .zip(p.chunks_exact(cols))
        .zip(delta)
    {
        for (x, &pv) in g.iter_mut().zip(pr) {
            *x = pv * (*x - dl) * scale;
        }
    }
}
