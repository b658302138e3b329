//! [`Rows`]: a weight prepared for the per-row gather kernel — CSR, its transpose (CSC)
//! and 2:4 (as the CSR of its slots) use it.
//!
//! The operator `A [out, inp]` is held as compressed rows. The forward kernel computes
//! `Yᵗ[r, tile] = Σ_e A[r, c_e] · Xᵗ[c_e, tile]` for a tile of `T` tokens, vectorised over
//! tokens: per stored entry one broadcast of the weight and `T / LANES` loads and
//! multiply-adds from the token-tiled activations (see [`super::pack`]), at most 64
//! tokens. It runs on the [`Groups`] layout: column panel by column panel (so the
//! panel of the tile stays in L1), rows in groups of equal entry count whose
//! accumulators stay in registers (see [`super::groups`]).
//!
//! Tasks own contiguous row ranges of balanced cost (entries plus a per-row overhead),
//! starting at multiples of [`RANGE_ALIGN`] rows, rather than rows in the matrix's
//! heavy-first `row_order`: a range's finished `Yᵗ` block is transposed (`LANES × LANES`
//! register blocks, 16 × 16 with AVX-512) straight into the output's columns `r0..r1`,
//! which no other task touches, and the cost balance gives the same load balance as the
//! swizzle. Activations are packed into a per-thread buffer reused between calls, as is
//! each task's `Yᵗ` (no allocation or zero fill per call: the first panel sets the
//! accumulators). The last panel runs block by block of [`BLOCK_ROWS`] rows, and a
//! finished block's outputs leave at once, while its accumulators are in L1, in
//! cache-line-aligned windows: each token's outputs of 16 rows one 64-byte store,
//! masked at ragged edges. Plain stores: non-temporal ones were no faster in two A/B
//! runs of one binary at 90–95% sparsity and about 15% slower at 98%.
//!
//! Floors (AVX-512, 3072 × 768 weight × 512 tokens): every multiply-add needs its own
//! activation load (the weight broadcast is shared by the tile's 4 registers), so the
//! loop is bound by loads: a synthetic loop over one L1-resident panel reaches 1.15
//! multiply-adds per cycle per core with 13-step groups and 1.35 with 100-step ones,
//! against 1.83 for the dense kernel, whose operands come from registers.
//!
//! The rows' split into panels of [`panel_cols`] columns is kept for the weight
//! gradient ([`super::sddmm`]), which walks the rows panel by panel.

use rayon::prelude::*;

use super::groups::{Group, Groups, BLOCK_ROWS, GROUP, MAX_PANEL};
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
    /// `split[r * (panels + 1) + p]`: the first entry of row `r` at a column `>= p *
    /// panel_cols` (the last is the row's end), over the panels of [`Groups`].
    split: Vec<usize>,
    /// Task boundaries: task `i` owns rows `ranges[i]..ranges[i + 1]`.
    ranges: Vec<usize>,
    /// The forward kernel's layout of the entries.
    groups: Groups,
}

/// Most rows one task owns (bounds its `Yᵗ` buffer).
const MAX_RANGE_ROWS: usize = 512;
/// Task ranges a matrix is cut into by cost (more where [`MAX_RANGE_ROWS`] binds, fewer
/// where the minimum cost per range does): long ranges share each loaded activation
/// panel among more rows (at 90% sparsity, 3072 × 768 × 512: cutting into 16 instead of
/// 4 cost 5–8%).
const RANGES_PER_MATRIX: usize = 4;
/// Task ranges start at multiples of this many rows, so whole register blocks of a
/// range's outputs are transposed together.
const RANGE_ALIGN: usize = 16;
/// The cost of a row beyond its entries, in entries.
const ROW_COST: usize = 4;
/// Fewest input columns per panel: a panel of a 64-token tile is then 32 KiB, within a
/// 48 KiB L1.
const MIN_PANEL_COLS: usize = 128;
/// Most input columns per panel.
const MAX_PANEL_COLS: usize = MAX_PANEL;
/// Entries an average row should have per panel: each row costs its accumulators' load
/// and store per panel, so sparse matrices take wider panels (at 95% and 98% sparsity,
/// 256 columns beat 128 by 2–9%; at 50–70%, 128 beat 256 by 20–30%).
const ENTRIES_PER_PANEL: usize = 12;

/// Input columns per panel: [`MIN_PANEL_COLS`], widened up to [`MAX_PANEL_COLS`] for
/// sparse matrices so an average row has [`ENTRIES_PER_PANEL`] entries in each.
fn panel_cols(out: usize, inp: usize, nnz: usize) -> usize {
    let per_row = nnz.div_ceil(out.max(1)).max(1);
    (ENTRIES_PER_PANEL * inp / per_row).clamp(MIN_PANEL_COLS, MAX_PANEL_COLS)
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
        let target = (total / RANGES_PER_MATRIX).max(4096);
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
        let groups = Groups::new(inp, panel_cols, &row_ptr, &col_idx, &values, &ranges);
        let panels = groups.panels();
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
            groups,
            row_ptr,
            col_idx,
            values,
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
        let at = r * (self.panels() + 1) + p;
        self.split[at]..self.split[at + 1]
    }

    /// Number of column panels (those of the forward kernel's [`Groups`]).
    pub(super) fn panels(&self) -> usize {
        self.groups.panels()
    }

    /// Task boundaries over rows.
    pub(super) fn ranges(&self) -> &[usize] {
        &self.ranges
    }

    /// `y [tokens, out] = x [tokens, inp] · Aᵀ` at `level` (slice lengths checked by the
    /// caller). The token tile is the smallest of 1, 2 or 4 registers (at most 64
    /// tokens) that covers `tokens`; with AVX2's 16 registers at most 2, so a group's
    /// `GROUP × 2` accumulators and the broadcast weight fit.
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
            (SimdLevel::Avx2, _) => self.run::<Ymm, 2>(x, tokens, y),
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
            self.ranges
                .par_windows(2)
                .enumerate()
                .for_each(|(i, range)| {
                    let (r0, r1) = (range[0], range[1]);
                    // One more row: the groups' spare.
                    with_scratch(Scratch::Accum, (r1 - r0 + 1) * t, |yt| {
                        for tile in 0..tiles {
                            let xt = &xp[tile * self.inp * t..(tile + 1) * self.inp * t];
                            let valid = t.min(tokens - tile * t);
                            // SAFETY: see `range_tile`; this task alone owns output
                            // columns r0..r1 and the tile's `valid` tokens are inside the
                            // output.
                            S::run(
                                #[inline(always)]
                                || unsafe {
                                    self.range_tile::<S, NV>(
                                        i,
                                        [r0, r1],
                                        xt,
                                        yt,
                                        valid,
                                        out.at(tile * t * self.out),
                                    )
                                },
                            );
                        }
                    });
                });
        });
    }

    /// One token tile of range `i` (rows `r0..r1`): every panel's groups into `yt`, the
    /// last block by block, each finished block's rows transposed into `dst` (the tile's
    /// first output row) in cache-line-aligned windows.
    ///
    /// # Safety
    /// Runs at `S::LEVEL`; `xt` is one packed tile of `t = NV * LANES` tokens; `yt` holds
    /// `t` floats per row of the range and one more row; `dst` is writable at `k * out +
    /// r` for `k < valid`, `r0 <= r < r1`.
    #[inline(always)]
    unsafe fn range_tile<S: Lanes, const NV: usize>(
        &self,
        i: usize,
        [r0, r1]: [usize; 2],
        xt: &[f32],
        yt: &mut [f32],
        valid: usize,
        dst: *mut f32,
    ) {
        let t = NV * S::LANES;
        let rows = r1 - r0;
        let last = self.groups.panels() - 1;
        // Outputs leave in windows that start where an output row's column starts a
        // cache line (the first window ends there), so each transposed block is whole
        // line-aligned stores; `done` rows have left.
        let line = S::LANES;
        let head = (line - (dst as usize / 4 + r0) % line) % line;
        let mut done = 0;
        for (u, unit) in self.groups.units(i).enumerate() {
            // Units past `last` are blocks of the last panel.
            let p = u.min(last);
            let panel = &xt[p * self.groups.panel_cols() * t..];
            for g in unit {
                self.group_panel::<S, NV>(g, p == 0, panel, yt);
            }
            if u >= last {
                // Rows up to `ready` are final; those of whole windows leave while in L1
                // (`ready >= BLOCK_ROWS > head` unless it is the range's end).
                let ready = ((u - last + 1) * BLOCK_ROWS).min(rows);
                let end = if ready == rows {
                    ready
                } else {
                    head + (ready - head) / line * line
                };
                if end > done {
                    transpose_out::<S>(
                        &yt[done * t..],
                        t,
                        [end - done, valid],
                        dst.add(r0 + done),
                        self.out,
                    );
                    done = end;
                }
            }
        }
    }

    /// Runs one group's steps over a token tile: `yt[row][..t] (+)= Σ v · panel[c][..t]`
    /// for each of its rows, setting instead of adding in the first panel.
    ///
    /// # Safety
    /// Runs at `S::LEVEL`; `panel` is the tile from the group's panel's first column on
    /// (`[cols][t]`); `yt` holds `t` floats for each of the group's rows (offsets within
    /// the range, the spare one included).
    #[inline(always)]
    unsafe fn group_panel<S: Lanes, const NV: usize>(
        &self,
        g: &Group,
        first: bool,
        panel: &[f32],
        yt: &mut [f32],
    ) {
        let (t, l) = (NV * S::LANES, S::LANES);
        let y = yt.as_mut_ptr();
        let x = panel.as_ptr();
        // Loops rather than `array::from_fn`: its closure is compiled without the
        // caller's target features, so the loads in it would not inline.
        let mut acc = [[S::zero(); NV]; GROUP];
        if !first {
            for (k, a) in acc.iter_mut().enumerate() {
                let yk = y.add(g.rows[k] as usize * t);
                for (v, a) in a.iter_mut().enumerate() {
                    *a = S::load(yk.add(v * l));
                }
            }
        }
        for step in self.groups.steps(g) {
            for (k, a) in acc.iter_mut().enumerate() {
                let w = S::splat(step.vals[k]);
                let xs = x.add((step.cols >> (8 * k) & 0xff) as usize * t);
                for (v, a) in a.iter_mut().enumerate() {
                    *a = S::fma(S::load(xs.add(v * l)), w, *a);
                }
            }
        }
        for (k, a) in acc.iter().enumerate() {
            let yk = y.add(g.rows[k] as usize * t);
            for (v, a) in a.iter().enumerate() {
                S::store(yk.add(v * l), *a);
            }
        }
    }
}

/// `dst[k * ld + i] = yt[i * t + k]` for `i < rows`, `k < tokens`: the finished `Yᵗ`
/// block of a row group written into the output's columns, `LANES × LANES` blocks at a
/// time (the last one masked to the rows left), so each token's outputs of a block go
/// out as one register store.
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
) {
    let n = S::LANES;
    let src = yt.as_ptr();
    for k in (0..tokens).step_by(n) {
        for i in (0..rows).step_by(n) {
            let wn = [n.min(rows - i), n.min(tokens - k)];
            S::transpose_lanes(src.add(i * t + k), t, dst.add(k * ld + i), ld, wn);
        }
    }
}
