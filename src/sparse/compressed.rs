//! Invariant checks shared by the compressed-row formats (CSR over elements, BSR over
//! blocks): row pointers and per-row column indices.

use super::broken;
use crate::error::Result;

/// Checks `row_ptr` (length `rows + 1`, starts at 0, monotone, ends at `indices.len()`)
/// and `indices` (each `< cols`, strictly increasing within a row) for `format`.
pub(super) fn check_compressed(
    format: &str,
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    indices: &[u32],
) -> Result<()> {
    if row_ptr.len().checked_sub(1) != Some(rows) {
        return Err(broken(
            format,
            "row_ptr length",
            format!(
                "{} entries, expected rows + 1 for {rows} rows",
                row_ptr.len()
            ),
        ));
    }
    if row_ptr[0] != 0 {
        return Err(broken(
            format,
            "row_ptr starts at 0",
            format!("row_ptr[0] = {}", row_ptr[0]),
        ));
    }
    for (r, w) in row_ptr.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(broken(
                format,
                "row_ptr monotone",
                format!("row_ptr[{}] = {} < row_ptr[{r}] = {}", r + 1, w[1], w[0]),
            ));
        }
    }
    let end = row_ptr[rows] as usize;
    if end != indices.len() {
        return Err(broken(
            format,
            "row_ptr ends at the number of indices",
            format!("row_ptr[{rows}] = {end}, but {} indices", indices.len()),
        ));
    }
    for (r, w) in row_ptr.windows(2).enumerate() {
        let row = &indices[w[0] as usize..w[1] as usize];
        if let Some(&c) = row.iter().find(|&&c| c as usize >= cols) {
            return Err(broken(
                format,
                "column index in range",
                format!("row {r} has column {c}, but there are {cols} columns"),
            ));
        }
        if let Some(p) = row.windows(2).find(|p| p[1] <= p[0]) {
            return Err(broken(
                format,
                "column indices strictly increasing",
                format!("row {r} has column {} after {}", p[1], p[0]),
            ));
        }
    }
    Ok(())
}

/// A compressed pattern transposed: the columns become rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransposedPattern {
    /// Row pointers of the transpose (`cols + 1` entries).
    pub ptr: Vec<u32>,
    /// For each transposed entry, its row in the original pattern (the transpose's column
    /// index, increasing within each transposed row).
    pub rows: Vec<u32>,
    /// For each transposed entry, its index in the original `col_idx` (to permute values
    /// or locate stored blocks).
    pub entries: Vec<u32>,
}

/// Transposes the compressed pattern of a matrix with `cols` columns (`row_ptr` with one
/// entry per row plus one, `col_idx` every entry's column) by a counting sort, as used for
/// the dX products (CSC of a CSR weight, block columns of a BSR weight).
///
/// # Panics
/// When a column index is `>= cols` or the row pointers exceed `col_idx`: the formats'
/// constructors check both.
pub fn transpose_pattern(cols: usize, row_ptr: &[usize], col_idx: &[u32]) -> TransposedPattern {
    let mut ptr = vec![0u32; cols + 1];
    for &c in col_idx {
        ptr[c as usize + 1] += 1;
    }
    for j in 0..cols {
        ptr[j + 1] += ptr[j];
    }
    let mut next: Vec<u32> = ptr[..cols].to_vec();
    let n = col_idx.len();
    let (mut rows, mut entries) = (vec![0u32; n], vec![0u32; n]);
    for (r, w) in row_ptr.windows(2).enumerate() {
        for (e, &c) in col_idx.iter().enumerate().take(w[1]).skip(w[0]) {
            let c = c as usize;
            let at = next[c] as usize;
            rows[at] = r as u32;
            entries[at] = e as u32;
            next[c] += 1;
        }
    }
    TransposedPattern { ptr, rows, entries }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_lists_each_column_s_rows_in_order_with_their_entries() {
        // [[a, 0, b], [0, 0, c], [d, e, 0]]
        let t = transpose_pattern(3, &[0, 2, 3, 5], &[0, 2, 2, 0, 1]);
        assert_eq!(t.ptr, [0, 2, 3, 5]);
        assert_eq!(t.rows, [0, 2, 2, 0, 1]);
        assert_eq!(t.entries, [0, 3, 4, 1, 2]);
    }
}
