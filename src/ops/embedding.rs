//! Embedding lookup (a row gather from a `[vocab, dim]` table) and its backward (a
//! scatter-add of the output gradient into the table's gradient); GPU tables (f32) run the
//! `embedding_*_f32` kernels.

use crate::error::{Error, Result};
use crate::ops::cpu::{par_rows, vectorized};
use crate::ops::elementwise::add_slice;
use crate::tensor::{with_float, Float, Tensor};

/// Fails, naming the first offending id and its position, unless every id is below `vocab`.
fn check_ids(op: &str, ids: &[u32], vocab: usize) -> Result<()> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(pos) => Err(Error::invalid(format!(
            "{op}: id {} at position {pos} is out of range for a vocabulary of {vocab}",
            ids[pos]
        ))),
        None => Ok(()),
    }
}

/// Looks up rows of `table` (`[vocab, dim]`): returns `[ids.len(), dim]` whose row `i` is
/// `table[ids[i]]`.
pub fn embedding(table: &Tensor, ids: &[u32]) -> Result<Tensor> {
    const OP: &str = "embedding";
    let [vocab, dim] = table.shape().dims_n::<2>(OP)?;
    check_ids(OP, ids, vocab)?;
    if table.device().is_gpu() {
        return crate::gpu::tensor_ops::embedding(table, ids, (vocab, dim));
    }
    with_float!(table.dtype(), OP, T => {
        let t = table.as_slice::<T>()?;
        let mut out = vec![T::ZERO; ids.len() * dim];
        par_rows(&mut out, dim, |r, row| {
            let id = ids[r] as usize;
            row.copy_from_slice(&t[id * dim..(id + 1) * dim]);
        });
        Tensor::from_vec(out, [ids.len(), dim])
    })
}

/// Backward of [`embedding`]: adds row `i` of `dy` (`[ids.len(), dim]`) into row `ids[i]`
/// of `dtable` (`[vocab, dim]`); repeated ids accumulate.
pub fn embedding_backward(ids: &[u32], dy: &Tensor, dtable: &mut Tensor) -> Result<()> {
    const OP: &str = "embedding_backward";
    dtable.expect_same_dtype(dy, OP)?;
    let [vocab, dim] = dtable.shape().dims_n::<2>(OP)?;
    if dy.dims() != [ids.len(), dim] {
        return Err(Error::shape(
            OP,
            format!(
                "dy must have shape [{}, {dim}] (ids × embedding dim), found {}",
                ids.len(),
                dy.shape()
            ),
        ));
    }
    check_ids(OP, ids, vocab)?;
    if dtable.device().is_gpu() {
        return crate::gpu::tensor_ops::embedding_backward(ids, dy, dtable, (vocab, dim));
    }
    with_float!(dy.dtype(), OP, T => {
        let g = dy.as_slice::<T>()?;
        let dt = dtable.as_mut_slice::<T>()?;
        // Serial: repeated ids would race, and the scatter is cheap next to the model.
        vectorized(#[inline(always)] || {
            for (pos, &id) in ids.iter().enumerate() {
                let id = id as usize;
                add_slice(&mut dt[id * dim..(id + 1) * dim], &g[pos * dim..]);
            }
        });
        Ok(())
    })
}
