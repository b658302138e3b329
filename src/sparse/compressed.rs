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
