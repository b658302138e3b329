//! Lookup table from token ids to vectors.

use super::cache::Cache;
use super::init::Init;
use super::mode::Mode;
use super::module::Module;
use super::param::Param;
use crate::error::{Error, Result};
use crate::ops::embedding::{embedding, embedding_backward};
use crate::tensor::Tensor;

/// An embedding table `{name}.weight` of shape `[vocab, dim]`.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// The table `[vocab, dim]`.
    pub weight: Param,
    cache: Cache<Vec<u32>>,
}

impl Embedding {
    /// A new N(0, std²) table.
    pub fn new(name: &str, vocab: usize, dim: usize, init: &Init) -> Self {
        let w = format!("{name}.weight");
        Embedding {
            weight: Param::new(&w, init.normal(&w, &[vocab, dim])),
            cache: Cache::new(name),
        }
    }

    /// Looks up `ids` laid out as `dims` (e.g. `[batch, tokens]`); returns `[dims.., dim]`.
    pub fn forward(&mut self, ids: &[u32], dims: &[usize], mode: Mode) -> Result<Tensor> {
        if dims.iter().product::<usize>() != ids.len() {
            return Err(Error::shape(
                "Embedding::forward",
                format!("{} ids do not fill layout {dims:?}", ids.len()),
            ));
        }
        let dim = self.weight.value.dims()[1];
        let out = embedding(&self.weight.value, ids)?;
        if mode.is_train() {
            self.cache.push(ids.to_vec());
        }
        let mut out_dims = dims.to_vec();
        out_dims.push(dim);
        out.reshape(out_dims)
    }

    /// Accumulates the table gradient from `dy [dims.., dim]` (nothing flows further back).
    pub fn backward(&mut self, dy: &Tensor) -> Result<()> {
        let ids = self.cache.pop()?;
        let dim = self.weight.value.dims()[1];
        let flat = dy.clone().reshape([ids.len(), dim])?;
        embedding_backward(&ids, &flat, &mut self.weight.grad)
    }
}

impl Module for Embedding {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.weight);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.weight);
    }
}
