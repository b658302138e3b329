//! [`Nm24`]: 2:4 structured sparsity, and [`prune_2_4`] to reach it.
//!
//! Each row is cut into `groups = ceil(cols / 4)` groups of 4 consecutive columns (the
//! last group zero-padded). Every group keeps at most 2 elements, stored in 2 slots:
//! `values` (f32) and `indices` (u8, the column inside the group, 0..4) are both
//! `[rows, groups * 2]` row-major, slot `2g` and `2g + 1` for group `g`, indices strictly
//! increasing within a group. A group with fewer than 2 kept elements fills its spare
//! slots with value 0 at the lowest unused positions. Slots at padded columns hold 0.
//! The slot layout carries no per-element pattern, so `nnz` counts non-zero values.

use super::{broken, check_shape, Bitmask, Dense};
use crate::error::{Error, Result};

/// A 2:4 structured-sparse matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Nm24 {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
    indices: Vec<u8>,
}

impl Nm24 {
    /// The kept elements of a masked matrix; fails naming the first row and group that
    /// keeps more than 2 of its 4 elements.
    pub fn from_masked(m: &Bitmask) -> Result<Nm24> {
        let groups = m.cols().div_ceil(4);
        let mut values = Vec::with_capacity(m.rows() * groups * 2);
        let mut indices = Vec::with_capacity(m.rows() * groups * 2);
        for r in 0..m.rows() {
            for g in 0..groups {
                let kept: Vec<(u8, f32)> = (0..4u8)
                    .filter_map(|i| m.kept(r, g * 4 + i as usize).map(|v| (i, v)))
                    .collect();
                if kept.len() > 2 {
                    return Err(Error::invalid(format!(
                        "2:4: row {r}, group {g} (columns {}..{}) keeps {} elements; at most 2 \
                         of every 4 are allowed (prune with prune_2_4 first)",
                        g * 4,
                        (g * 4 + 4).min(m.cols()),
                        kept.len()
                    )));
                }
                let mut slots = kept;
                let spare: Vec<u8> = (0..4u8)
                    .filter(|i| slots.iter().all(|s| s.0 != *i))
                    .collect();
                slots.extend(spare.into_iter().take(2 - slots.len()).map(|i| (i, 0.0)));
                slots.sort_by_key(|s| s.0);
                for (i, v) in slots {
                    indices.push(i);
                    values.push(v);
                }
            }
        }
        Ok(Nm24 {
            rows: m.rows(),
            cols: m.cols(),
            values,
            indices,
        })
    }

    /// A matrix from raw parts (e.g. a checkpoint), checking every invariant.
    pub fn from_parts(
        rows: usize,
        cols: usize,
        values: Vec<f32>,
        indices: Vec<u8>,
    ) -> Result<Nm24> {
        check_shape("2:4", rows, cols)?;
        let slots = rows * cols.div_ceil(4) * 2;
        for (name, len) in [
            ("values length", values.len()),
            ("indices length", indices.len()),
        ] {
            if len != slots {
                return Err(broken(
                    "2:4",
                    name,
                    format!("{len} entries, expected rows x ceil(cols / 4) x 2 = {slots}"),
                ));
            }
        }
        if let Some(k) = indices.iter().position(|&i| i >= 4) {
            return Err(broken(
                "2:4",
                "index in 0..4",
                format!("slot {k} has index {}", indices[k]),
            ));
        }
        if let Some(k) = indices.chunks(2).position(|p| p[1] <= p[0]) {
            return Err(broken(
                "2:4",
                "indices strictly increasing within a group",
                format!(
                    "group slot pair {k} has indices {:?}",
                    &indices[2 * k..2 * k + 2]
                ),
            ));
        }
        let nm = Nm24 {
            rows,
            cols,
            values,
            indices,
        };
        if let Some((r, c, _)) = nm.slots().find(|&(_, c, v)| c >= cols && v != 0.0) {
            return Err(broken(
                "2:4",
                "padding is zero",
                format!("row {r} stores a non-zero at padded column {c} (cols = {cols})"),
            ));
        }
        Ok(nm)
    }

    /// Every slot as (row, padded column, value).
    fn slots(&self) -> impl Iterator<Item = (usize, usize, f32)> + '_ {
        let per_row = self.cols.div_ceil(4) * 2;
        self.values
            .iter()
            .zip(&self.indices)
            .enumerate()
            .map(move |(k, (&v, &i))| (k / per_row, (k % per_row) / 2 * 4 + i as usize, v))
    }

    /// `[rows, cols]` (the logical shape, padding excluded).
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Slot values, `[rows, ceil(cols / 4) * 2]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Slot column inside its group (0..4), `[rows, ceil(cols / 4) * 2]`.
    pub fn indices(&self) -> &[u8] {
        &self.indices
    }

    /// Number of non-zero values.
    pub fn nnz(&self) -> usize {
        self.values.iter().filter(|v| **v != 0.0).count()
    }

    /// The dense matrix, padding dropped.
    pub fn to_dense(&self) -> Dense {
        let mut out = Dense::zeros(self.rows, self.cols);
        let dense = out.values_mut();
        for (r, c, v) in self.slots() {
            if c < self.cols {
                dense[r * self.cols + c] = v;
            }
        }
        out
    }
}

/// Prunes a dense matrix to 2:4: in every group of 4 consecutive columns of a row (the
/// last group may be shorter) keeps the 2 non-zeros of largest magnitude and zeroes the
/// rest, so a group keeps exactly min(2, its non-zeros). Ties in |w| go to the lower
/// column; NaN counts as the largest magnitude.
pub fn prune_2_4(dense: &Dense) -> Dense {
    let mut out = dense.clone();
    let cols = dense.cols();
    for row in out.values_mut().chunks_mut(cols.max(1)) {
        for group in row.chunks_mut(4) {
            let mut order: Vec<usize> = (0..group.len()).filter(|&i| group[i] != 0.0).collect();
            order.sort_by(|&a, &b| group[b].abs().total_cmp(&group[a].abs()).then(a.cmp(&b)));
            for &i in order.iter().skip(2) {
                group[i] = 0.0;
            }
        }
    }
    out
}
