//! [`Rows`]: a weight prepared for the per-row gather kernel — CSR, its transpose (CSC)
//! and 2:4 (as the CSR of its slots) use it.
//!
//! The operator `A [out, inp]` is held as compressed rows. The kernel computes
//! `Yᵗ[r, tile] = Σ_e A[r, c_e] · Xᵗ[c_e, tile]` for a tile of `T` tokens, vectorised over
//! tokens: per stored entry one broadcast of the weight and `T / LANES` loads and
//! multiply-adds from the token-tiled activations (see [`super::pack`]), at most 64
//! tokens. The columns are cut into panels (at least [`MIN_PANEL_COLS`], wider for
//! sparser rows, see [`panel_cols`]) so the panel of the token tile in use stays close
//! while every row of a task passes over it (each row keeps, per panel, where its
//! entries start), and rows go in pairs so the multiply-add chains overlap.
//!
//! Tasks own contiguous row ranges of balanced cost (entries plus a per-row overhead),
//! starting at multiples of [`RANGE_ALIGN`] rows, rather than rows in the matrix's
//! heavy-first `row_order`: a range's finished `Yᵗ` block is transposed (`LANES × LANES`
//! register blocks, 16 × 16 with AVX-512) straight into the output's columns `r0..r1`,
//! which no other task touches, and the cost balance gives the same load balance as the
//! swizzle.
//!
//! Costs that do not scale with the entries are kept small: activations are packed with
//! register transposes into a per-thread buffer reused between calls, as is each task's
//! `Yᵗ` (no allocation or zero fill per call: the first panel sets the accumulators);
//! the last panel runs in cache-line-aligned groups of rows, each transposed while in
//! L1 so every token's outputs of a block leave as one 64-byte store, non-temporal for
//! outputs past [`STREAM_MIN`] (no read of the line first), masked at ragged edges.
//!
//! Floors (AVX-512, 3072 × 768 weight × 512 tokens): the multiply-adds need one
//! activation load each (the weight broadcast is shared by the tile's 4 registers), so
//! the loop is bound by loads, and the whole 192 KiB tile of `Xᵗ` does not fit L1 —
//! a panel's lines come largely from L2, at about 0.75 multiply-adds per cycle per core
//! (estimated from the time) against 2 at the load-port limit. What remains per call
//! besides the entries is packing and writing the 6 MiB output: at 99.9% sparsity one
//! thread still takes ≈ 0.65 ms, against ≈ 2.3 ms at 95% and ≈ 3.7 ms at 90%.
//!
//! Measured and not kept (one thread, minimum of 15 calls, loaded machine; 90% / 95%
//! against 3.78 / 2.36 ms for this design): four rows interleaved instead of two (3.68
//! / 2.34 ms, within noise); L1 blocking — groups of 32–128 rows running every panel
//! before their transpose, so their `Yᵗ` stays in L1, with 96–192-column panels
//! (3.87–4.07 / 2.55–2.82 ms); 32-token tiles with four rows and 192-column panels
//! (4.03–4.07 / 2.55 ms). Unstructured rows share few columns, so keeping a panel in L1
//! saves less than the extra per-row, per-panel work costs.

use rayon::prelude::*;

use super::pack::{pack_tiles_into, with_scratch, Scratch};
use super::simd::{Lanes, Portable, SharedOut};
#[cfg(target_arch = "x86_64")]
use super::simd::{Ymm, Zmm};
use crate::ops::cpu::SimdLevel;
use crate::sparse::transpose_pattern;

/// A weight as compressed rows with balanced task ranges and per-panel entry starts.
#[derive(Debug, Clone)]
pub(super) struct Rows {
    out: usize,
    inp: usize,
    row_ptr: Vec<usize>,
    col_idx: Vec<u32>,
    values: Vec<f32>,
    /// Column panels: `inp.div_ceil(panel_cols)`.
    panels: usize,
    /// `split[r * (panels + 1) + p]`: the first entry of row `r` at a column
    /// `>= p * panel_cols` (the last is the row's end).
    split: Vec<usize>,
    /// Task boundaries: task `i` owns rows `ranges[i]..ranges[i + 1]`.
    ranges: Vec<usize>,
}

/// Most rows one task owns (bounds its `Yᵗ` buffer).
const MAX_RANGE_ROWS: usize = 512;
/// Task ranges start at multiples of this many rows, so whole register blocks of a
/// range's outputs are transposed together.
const RANGE_ALIGN: usize = 16;
/// Rows transposed into the output together: a token's outputs of a group are written
/// as whole cache lines (the output's rows are often a multiple of 4 KiB apart, so
/// partially written lines would evict each other before they are complete).
const OUT_GROUP: usize = 32;
/// Outputs of at least this many floats (4 MiB, twice both cores' L2 together) are written
/// with non-temporal stores: they would not stay in cache anyway, and the stores then
/// skip reading the lines first. Smaller ones stay in cache for their consumer.
const STREAM_MIN: usize = 1 << 20;
/// The cost of a row beyond its entries, in entries.
const ROW_COST: usize = 4;
/// Fewest input columns per panel: a panel of a 64-token tile is then 24 KiB.
const MIN_PANEL_COLS: usize = 96;
/// Entries a row should have per panel, so the per-panel row overhead stays small.
const ENTRIES_PER_PANEL: usize = 16;

/// Input columns per panel: at least [`MIN_PANEL_COLS`], widened for sparse matrices so
/// an average row has [`ENTRIES_PER_PANEL`] entries in each.
fn panel_cols(out: usize, inp: usize, nnz: usize) -> usize {
    let per_row = nnz.div_ceil(out.max(1)).max(1);
    (ENTRIES_PER_PANEL * inp / per_row).clamp(MIN_PANEL_COLS, inp.max(MIN_PANEL_COLS))
}

impl Rows {
    /// Compressed rows of `A [out, inp]`: row `r` holds entries `row_ptr[r]..row_ptr[r +
    /// 1]` of `col_idx` / `values` (already validated: columns increase within a row).
    pub(super) fn new(
        out: usize,
        inp: usize,
        row_ptr: Vec<usize>,
        col_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Rows {
        let total = col_idx.len() + ROW_COST * out;
        let target = (total / 16).max(4096);
        let mut ranges = vec![0];
        let mut cost = 0;
        for r in 0..out {
            cost += row_ptr[r + 1] - row_ptr[r] + ROW_COST;
            let aligned = (r + 1) % RANGE_ALIGN == 0;
            if aligned && (cost >= target || r + 1 - ranges[ranges.len() - 1] == MAX_RANGE_ROWS) {
                ranges.push(r + 1);
                cost = 0;
            }
        }
        if ranges[ranges.len() - 1] != out {
            ranges.push(out);
        }
        let panel_cols = panel_cols(out, inp, col_idx.len());
        let panels = inp.div_ceil(panel_cols);
        let mut split = Vec::with_capacity(out * (panels + 1));
        for r in 0..out {
            let mut e = row_ptr[r];
            for p in 0..=panels {
                while e < row_ptr[r + 1] && (col_idx[e] as usize) < p * panel_cols {
                    e += 1;
                }
                split.push(if p == panels { row_ptr[r + 1] } else { e });
            }
        }
        Rows {
            out,
            inp,
            row_ptr,
            col_idx,
            values,
            panels,
            split,
            ranges,
        }
    }

    /// The compressed rows of `Aᵀ [inp, out]` (the CSC of `A`), by a counting sort.
    pub(super) fn transpose(&self) -> Rows {
        let t = transpose_pattern(self.inp, &self.row_ptr, &self.col_idx);
        let row_ptr = t.ptr.iter().map(|&p| p as usize).collect();
        let values = t.entries.iter().map(|&e| self.values[e as usize]).collect();
        Rows::new(self.inp, self.out, row_ptr, t.rows, values)
    }

    /// `[out, inp]`.
    pub(super) fn shape(&self) -> [usize; 2] {
        [self.out, self.inp]
    }

    /// Column of each entry.
    pub(super) fn col_idx(&self) -> &[u32] {
        &self.col_idx
    }

    /// The entries of row `r` in column panel `p` (`p < panels()`).
    pub(super) fn panel_entries(&self, r: usize, p: usize) -> std::ops::Range<usize> {
        let at = r * (self.panels + 1) + p;
        self.split[at]..self.split[at + 1]
    }

    /// Number of column panels.
    pub(super) fn panels(&self) -> usize {
        self.panels
    }

    /// Task boundaries over rows.
    pub(super) fn ranges(&self) -> &[usize] {
        &self.ranges
    }

    /// `y [tokens, out] = x [tokens, inp] · Aᵀ` at `level` (slice lengths checked by the
    /// caller). The token tile is the smallest of 1, 2 or 4 registers (at most 64
    /// tokens) that covers `tokens`.
    pub(super) fn forward(&self, x: &[f32], tokens: usize, y: &mut [f32], level: SimdLevel) {
        match (level, tokens) {
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512, 0..=16) => self.run::<Zmm, 1>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512, 17..=32) => self.run::<Zmm, 2>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx512, _) => self.run::<Zmm, 4>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2, 0..=8) => self.run::<Ymm, 1>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2, 9..=16) => self.run::<Ymm, 2>(x, tokens, y),
            #[cfg(target_arch = "x86_64")]
            (SimdLevel::Avx2, _) => self.run::<Ymm, 4>(x, tokens, y),
            (_, 0..=8) => self.run::<Portable, 1>(x, tokens, y),
            _ => self.run::<Portable, 4>(x, tokens, y),
        }
    }

    /// The parallel driver over row ranges; each range runs every token tile, panel by
    /// panel.
    fn run<S: Lanes, const NV: usize>(&self, x: &[f32], tokens: usize, y: &mut [f32]) {
        let t = NV * S::LANES;
        if tokens == 0 || self.out == 0 {
            return;
        }
        let tiles = tokens.div_ceil(t);
        with_scratch(Scratch::Packed, tiles * self.inp * t, |xp| {
            pack_tiles_into::<S>(x, tokens, self.inp, t, xp);
            let xp = &*xp;
            let out = SharedOut::new(y);
            let stream = tokens * self.out >= STREAM_MIN;
            self.ranges.par_windows(2).for_each(|range| {
                let (r0, r1) = (range[0], range[1]);
                with_scratch(Scratch::Accum, (r1 - r0) * t, |yt| {
                    for tile in 0..tiles {
                        let xt = &xp[tile * self.inp * t..(tile + 1) * self.inp * t];
                        let valid = t.min(tokens - tile * t);
                        // SAFETY: see `range_tile`; this task alone owns output columns
                        // r0..r1 and the tile's `valid` tokens are inside the output.
                        S::run(
                            #[inline(always)]
                            || unsafe {
                                self.range_tile::<S, NV>(
                                    [r0, r1],
                                    xt,
                                    yt,
                                    valid,
                                    out.at(tile * t * self.out),
                                    stream,
                                )
                            },
                        );
                    }
                });
            });
        });
    }

    /// One token tile of the rows `r0..r1`: every panel into `yt` (the first from zero),
    /// the last one group by group, each group transposed into `dst` (the tile's first
    /// output row) while it is still in L1, with non-temporal stores when `stream`.
    ///
    /// # Safety
    /// Runs at `S::LEVEL`; `xt` is one packed tile of `t = NV * LANES` tokens; `yt` holds
    /// `t` floats per row of the range; `dst` is writable at `k * out + r` for `k <
    /// valid`, `r0 <= r < r1`.
    #[inline(always)]
    unsafe fn range_tile<S: Lanes, const NV: usize>(
        &self,
        [r0, r1]: [usize; 2],
        xt: &[f32],
        yt: &mut [f32],
        valid: usize,
        dst: *mut f32,
        stream: bool,
    ) {
        let t = NV * S::LANES;
        if self.panels == 0 {
            yt.fill(0.0);
        }
        let last = self.panels.saturating_sub(1);
        for p in 0..last {
            self.rows_pass::<S, NV>(p, r0, [r0, r1], xt, yt);
        }
        // Groups start where an output row's column `g` starts a cache line (the first
        // group ends there), so whole transposed blocks are line-aligned stores.
        let line = S::LANES;
        let head = (line - (dst as usize / 4 + r0) % line) % line;
        let mut g = r0;
        while g < r1 {
            let ge = if g == r0 && head > 0 {
                r0 + head
            } else {
                g + OUT_GROUP
            }
            .min(r1);
            if self.panels > 0 {
                self.rows_pass::<S, NV>(last, r0, [g, ge], xt, yt);
            }
            transpose_out::<S>(
                &yt[(g - r0) * t..],
                t,
                [ge - g, valid],
                dst.add(g),
                self.out,
                stream,
            );
            g = ge;
        }
        S::fence();
    }

    /// Adds panel `p` of rows `rows[0]..rows[1]` into `yt` (the buffer of the range
    /// starting at `r0`; panel 0 overwrites it), two rows at a time.
    ///
    /// # Safety
    /// As for [`Rows::rows_panel`].
    #[inline(always)]
    unsafe fn rows_pass<S: Lanes, const NV: usize>(
        &self,
        p: usize,
        r0: usize,
        [first, end]: [usize; 2],
        xt: &[f32],
        yt: &mut [f32],
    ) {
        let t = NV * S::LANES;
        let mut r = first;
        while r < end {
            let pair = r + 1 < end;
            self.rows_panel::<S, NV>(r, pair, p, xt, &mut yt[(r - r0) * t..]);
            r += if pair { 2 } else { 1 };
        }
    }

    /// Adds panel `p` of row `r` (and of row `r + 1` when `pair`) over one token tile:
    /// `yt[..t] += Σ_e v_e · xt[c_e][..t]` (row `r + 1` into `yt[t..2t]`; panel 0 sets
    /// instead of adding).
    ///
    /// # Safety
    /// Runs at `S::LEVEL`; `xt` is `[inp][t]`; `yt` holds `t` (or `2t` when `pair`)
    /// floats.
    #[inline(always)]
    unsafe fn rows_panel<S: Lanes, const NV: usize>(
        &self,
        r: usize,
        pair: bool,
        p: usize,
        xt: &[f32],
        yt: &mut [f32],
    ) {
        let t = NV * S::LANES;
        let first = p == 0;
        let a = self.panel_entries(r, p);
        let b = if pair {
            self.panel_entries(r + 1, p)
        } else {
            0..0
        };
        let (a0, a1, b0, b1) = (a.start, a.end, b.start, b.end);
        if !first && a0 == a1 && b0 == b1 {
            return;
        }
        let ya = yt.as_mut_ptr();
        let yb = ya.add(if pair { t } else { 0 });
        // Loops rather than `array::from_fn`: its closure is compiled without the
        // caller's target features, so the loads in it would not inline.
        let mut acc_a = [S::zero(); NV];
        let mut acc_b = [S::zero(); NV];
        if !first {
            for v in 0..NV {
                acc_a[v] = S::load(ya.add(v * S::LANES));
                acc_b[v] = S::load(yb.add(v * S::LANES));
            }
        }
        let n = (a1 - a0).min(b1 - b0);
        for i in 0..n {
            self.entry::<S, NV>(a0 + i, xt, &mut acc_a);
            self.entry::<S, NV>(b0 + i, xt, &mut acc_b);
        }
        for e in a0 + n..a1 {
            self.entry::<S, NV>(e, xt, &mut acc_a);
        }
        for e in b0 + n..b1 {
            self.entry::<S, NV>(e, xt, &mut acc_b);
        }
        if pair {
            for (v, a) in acc_b.iter().enumerate() {
                S::store(yb.add(v * S::LANES), *a);
            }
        }
        for (v, a) in acc_a.iter().enumerate() {
            S::store(ya.add(v * S::LANES), *a);
        }
    }

    /// `acc += v_e · xt[c_e][..t]` for entry `e`.
    ///
    /// # Safety
    /// Runs at `S::LEVEL`; `e` is an entry; `xt` is `[inp][NV * LANES]`.
    #[inline(always)]
    unsafe fn entry<S: Lanes, const NV: usize>(&self, e: usize, xt: &[f32], acc: &mut [S::V; NV]) {
        let w = S::splat(*self.values.get_unchecked(e));
        let xs = xt
            .as_ptr()
            .add(*self.col_idx.get_unchecked(e) as usize * NV * S::LANES);
        for (v, a) in acc.iter_mut().enumerate() {
            *a = S::fma(S::load(xs.add(v * S::LANES)), w, *a);
        }
    }
}

/// `dst[k * ld + i] = yt[i * t + k]` for `i < rows`, `k < tokens`: the finished `Yᵗ`
/// block of a row group written into the output's columns, `LANES × LANES` blocks at a
/// time (the last one masked to the rows left), so each token's outputs of a block go
/// out as one register store — with `stream`, a non-temporal one where it fills a cache
/// line.
///
/// # Safety
/// Runs at `S::LEVEL`; `yt` is `[rows][t]` with `t` a multiple of `LANES`; `dst` is
/// writable at those offsets.
#[inline(always)]
unsafe fn transpose_out<S: Lanes>(
    yt: &[f32],
    t: usize,
    [rows, tokens]: [usize; 2],
    dst: *mut f32,
    ld: usize,
    stream: bool,
) {
    let n = S::LANES;
    let src = yt.as_ptr();
    for k in (0..tokens).step_by(n) {
        for i in (0..rows).step_by(n) {
            let wn = [n.min(rows - i), n.min(tokens - k)];
            S::transpose_lanes(src.add(i * t + k), t, dst.add(k * ld + i), ld, wn, stream);
        }
    }
}
