//! [`Groups`]: the layout the compressed-rows forward kernel runs on — each task's rows,
//! column panel by column panel, in groups of [`GROUP`] rows with the same number of
//! entries in the panel, their entries interleaved step by step.
//!
//! The kernel ([`super::rows`]) keeps a token tile of activations `Xᵗ [inp][t]` packed
//! and, for every row, `t` accumulators. Per stored entry it broadcasts the weight and
//! adds it times one column of the tile, so the loop is bound by activation loads. A
//! column panel (128–256 columns, chosen by the caller) of a 64-token tile is 32–64 KiB,
//! which stays in or near L1 while every row of the task adds its entries in that
//! panel; a whole tile (192 KiB for 768 inputs) would come from L2.
//!
//! Within a panel rows have few entries each (≈ 13 at 90% sparsity), and walking them
//! row by row costs a mispredicted loop exit per row and panel. So a panel's rows are
//! sorted by entry count and cut into groups of [`GROUP`]: a group runs `steps`
//! iterations, each adding one entry of every one of its rows (shorter rows are padded
//! with zero weights), with `GROUP × NV` accumulators in registers. Rows of equal count
//! are common (hundreds of rows share a dozen counts), so padding is rare, and
//! consecutive groups have the same trip count, which the branch predictor learns.
//!
//! The first panel lists every row of the task (empty ones with zero steps), so it sets
//! every accumulator; later panels list only rows with entries there. A group short of
//! rows is filled with a spare row (offset = the task's row count), whose accumulators
//! the kernel keeps but never reads. The last panel is sorted block by block of
//! [`BLOCK_ROWS`] rows, so a block's outputs can be written as soon as it is done, while
//! its accumulators are still in L1 and interleaved with the next block's arithmetic.

/// Rows of a group: their accumulators stay in registers while the group's steps run.
pub(super) const GROUP: usize = 4;

/// Rows of one block of the last panel. Each token's outputs of a block leave as
/// `BLOCK_ROWS / 16` consecutive cache lines; at 3072 × 768 × 512 and 90% sparsity, 16-row
/// blocks took 1.67–2.11 ms a call, 32 rows 1.46–1.52, 64 rows 1.46–1.52, 128 rows
/// 1.39–1.43, 256 rows 1.46–1.48 (the output, 6 MiB, does not stay in cache).
pub(super) const BLOCK_ROWS: usize = 128;

/// One step of a group: the next entry of each of its rows (column and weight; padding
/// is weight 0 at the panel's first column).
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    /// Input column of each row's entry, relative to the panel's first, one byte per
    /// row (row `k` in bits `8k..8k + 8`): one load for the group's four addresses (a
    /// synthetic loop over one panel ran 8–12% faster than with four `u32` loads).
    pub(super) cols: u32,
    /// Weight of each row's entry.
    pub(super) vals: [f32; GROUP],
}

/// Widest panel [`Step::cols`] can address.
pub(super) const MAX_PANEL: usize = 256;

/// Rows that run their entries of one panel together.
#[derive(Debug, Clone, Copy)]
pub(super) struct Group {
    /// Each row's offset within its task's rows (or the spare row).
    pub(super) rows: [u32; GROUP],
    /// Index of the first step.
    pub(super) first: usize,
    /// Number of steps.
    pub(super) steps: usize,
}

/// The groups of every task range: its units are the column panels but the last, then
/// the last panel block by block of [`BLOCK_ROWS`] rows.
#[derive(Debug, Clone)]
pub(super) struct Groups {
    panels: usize,
    panel_cols: usize,
    /// Units of range `i`: `range_units[i]..range_units[i + 1]` (indices into `spans`).
    range_units: Vec<usize>,
    /// Groups of unit `u`: `spans[u]..spans[u + 1]`.
    spans: Vec<usize>,
    groups: Vec<Group>,
    steps: Vec<Step>,
}

impl Groups {
    /// Groups compressed rows `[out, inp]` (`row_ptr`, `col_idx` increasing within a
    /// row, `values`) for tasks owning rows `ranges[i]..ranges[i + 1]`, in column
    /// panels of `pc` columns.
    pub(super) fn new(
        inp: usize,
        pc: usize,
        row_ptr: &[usize],
        col_idx: &[u32],
        values: &[f32],
        ranges: &[usize],
    ) -> Groups {
        assert!(pc > 0 && pc <= MAX_PANEL, "Groups: panel of {pc} columns");
        let panels = inp.div_ceil(pc).max(1);
        let mut g = Groups {
            panels,
            panel_cols: pc,
            range_units: vec![0],
            spans: vec![0],
            groups: Vec::new(),
            steps: Vec::new(),
        };
        for range in ranges.windows(2) {
            let (r0, r1) = (range[0], range[1]);
            // Each row's next entry, advancing panel by panel.
            let mut next: Vec<usize> = row_ptr[r0..r1].to_vec();
            for p in 0..panels {
                let end = ((p + 1) * pc).min(inp);
                // (entries in the panel, row offset) of the rows the panel lists.
                let mut rows: Vec<(usize, usize)> = Vec::with_capacity(r1 - r0);
                for (i, e) in next.iter_mut().enumerate() {
                    let start = *e;
                    while *e < row_ptr[r0 + i + 1] && (col_idx[*e] as usize) < end {
                        *e += 1;
                    }
                    if p == 0 || *e > start {
                        rows.push((*e - start, i));
                    }
                }
                let unit = if p + 1 < panels { r1 - r0 } else { BLOCK_ROWS };
                let mut rest = &mut rows[..];
                for b in (0..r1 - r0).step_by(unit) {
                    let n = rest.iter().take_while(|&&(_, i)| i < b + unit).count();
                    let (members, tail) = rest.split_at_mut(n);
                    rest = tail;
                    // Heaviest first, so rows of equal count share groups.
                    members.sort_by_key(|&(n, i)| (std::cmp::Reverse(n), i));
                    for chunk in members.chunks(GROUP) {
                        g.push_group(chunk, &next, r1 - r0, p * pc, col_idx, values);
                    }
                    g.spans.push(g.groups.len());
                }
            }
            g.range_units.push(g.spans.len() - 1);
        }
        g
    }

    /// Appends one group of `members` (entry count, row offset), each row's panel
    /// entries ending at `next[offset]`; missing members are the spare row (offset
    /// `range_rows`); columns are stored relative to `pad_col`, the panel's first,
    /// where padding points.
    fn push_group(
        &mut self,
        members: &[(usize, usize)],
        next: &[usize],
        range_rows: usize,
        pad_col: usize,
        col_idx: &[u32],
        values: &[f32],
    ) {
        let steps = members[0].0;
        let mut rows = [range_rows as u32; GROUP];
        for (k, &(_, i)) in members.iter().enumerate() {
            rows[k] = i as u32;
        }
        let first = self.steps.len();
        for s in 0..steps {
            let mut step = Step {
                cols: 0,
                vals: [0.0; GROUP],
            };
            for (k, &(n, i)) in members.iter().enumerate() {
                if s < n {
                    let e = next[i] - n + s;
                    step.cols |= (col_idx[e] - pad_col as u32) << (8 * k);
                    step.vals[k] = values[e];
                }
            }
            self.steps.push(step);
        }
        self.groups.push(Group { rows, first, steps });
    }

    /// Number of column panels (at least one).
    pub(super) fn panels(&self) -> usize {
        self.panels
    }

    /// Input columns per panel (the last may have fewer).
    pub(super) fn panel_cols(&self) -> usize {
        self.panel_cols
    }

    /// The units of task range `i`, each its groups: `panels() - 1` whole panels, then
    /// the last panel's blocks of [`BLOCK_ROWS`] rows in order.
    pub(super) fn units(&self, i: usize) -> impl Iterator<Item = &[Group]> {
        (self.range_units[i]..self.range_units[i + 1])
            .map(|u| &self.groups[self.spans[u]..self.spans[u + 1]])
    }

    /// The steps of `group`.
    pub(super) fn steps(&self, group: &Group) -> &[Step] {
        &self.steps[group.first..group.first + group.steps]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random compressed-rows matrix: each element kept with probability `density`,
    /// value `1 + index` (never zero), plus row 1 fully dense and row 3 empty.
    fn random_rows(
        out: usize,
        inp: usize,
        density: f64,
        seed: u64,
    ) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (mut ptr, mut cols, mut vals) = (vec![0], Vec::new(), Vec::new());
        for r in 0..out {
            for c in 0..inp {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                if r != 3 && (r == 1 || u < density) {
                    cols.push(c as u32);
                    vals.push(1.0 + vals.len() as f32);
                }
            }
            ptr.push(cols.len());
        }
        (ptr, cols, vals)
    }

    /// Rebuilds the matrix from the groups and checks the layout's promises: every
    /// stored entry exactly once at its row and column, padding with zero weight only,
    /// the first panel listing every row, groups heaviest first within a unit, and the
    /// last panel's units holding only their block's rows.
    fn check(out: usize, inp: usize, pc: usize, density: f64, ranges: &[usize]) {
        let (ptr, cols, vals) = random_rows(out, inp, density, (out * inp + pc) as u64);
        let g = Groups::new(inp, pc, &ptr, &cols, &vals, ranges);
        let what = format!("{out}x{inp} panel {pc} density {density}");
        let mut dense = vec![0f32; out * inp];
        let mut stored = 0;
        for (i, range) in ranges.windows(2).enumerate() {
            let (r0, rows) = (range[0], range[1] - range[0]);
            let last = g.panels() - 1;
            let mut listed_first = vec![0; rows];
            for (u, unit) in g.units(i).enumerate() {
                let p = u.min(last);
                let mut prev = usize::MAX;
                for group in unit {
                    assert!(group.steps <= prev, "{what}: unit {u} not heaviest first");
                    prev = group.steps;
                    for (k, &row) in group.rows.iter().enumerate() {
                        let row = row as usize;
                        if row == rows {
                            continue;
                        }
                        assert!(row < rows, "{what}: row offset {row} outside the range");
                        if p == 0 {
                            listed_first[row] += 1;
                        }
                        if u >= last {
                            let b = (u - last) * BLOCK_ROWS;
                            assert!(
                                (b..b + BLOCK_ROWS).contains(&row),
                                "{what}: row {row} in block at {b}"
                            );
                        }
                        for step in g.steps(group) {
                            let c = p * pc + (step.cols >> (8 * k) & 0xff) as usize;
                            let v = step.vals[k];
                            if v != 0.0 {
                                assert!(
                                    c < inp.min((p + 1) * pc),
                                    "{what}: column {c} outside panel {p}"
                                );
                                let at = (r0 + row) * inp + c;
                                assert_eq!(dense[at], 0.0, "{what}: ({}, {c}) twice", r0 + row);
                                dense[at] = v;
                                stored += 1;
                            }
                        }
                    }
                    for k in unit_members(group, rows)..GROUP {
                        assert!(
                            g.steps(group).iter().all(|s| s.vals[k] == 0.0),
                            "{what}: spare row with weights"
                        );
                    }
                }
            }
            assert!(
                listed_first.iter().all(|&n| n == 1),
                "{what}: first panel does not list every row once"
            );
        }
        assert_eq!(stored, cols.len(), "{what}: stored entries");
        for r in 0..out {
            for e in ptr[r]..ptr[r + 1] {
                assert_eq!(
                    dense[r * inp + cols[e] as usize],
                    vals[e],
                    "{what}: entry ({r}, {})",
                    cols[e]
                );
            }
        }
    }

    /// Members of `group` before the spare row fills it.
    fn unit_members(group: &Group, rows: usize) -> usize {
        group
            .rows
            .iter()
            .take_while(|&&r| r as usize != rows)
            .count()
    }

    #[test]
    fn groups_hold_every_entry_once_in_its_panel_and_block() {
        check(37, 70, 128, 0.3, &[0, 37]);
        check(300, 300, 128, 0.1, &[0, 16, 160, 300]);
        check(300, 600, 256, 0.05, &[0, 144, 300]);
        check(130, 1000, 200, 0.9, &[0, 64, 130]);
        check(20, 0, 128, 0.5, &[0, 20]);
        check(5, 9, 1, 1.0, &[0, 5]);
    }
}
