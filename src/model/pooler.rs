//! The BERT-style pooler shared by both model graphs: tanh(dense(first token)).

use crate::error::Result;
use crate::nn::{Cache, Init, Linear, Mode, Module, Param};
use crate::ops::elementwise::{tanh, tanh_backward};
use crate::ops::tokens::{concat_tokens, split_tokens};
use crate::tensor::Tensor;

/// What one training forward keeps: the pooled output and the sequence length.
#[derive(Debug, Clone)]
struct Saved {
    pooled: Tensor,
    seq: usize,
}

/// Pools a sequence `[B, T, h]` into `[B, h]` from its first token, with the dense layer
/// named `{prefix}.dense` (`vilt.pooler`, `lxmert.pooler`).
#[derive(Debug, Clone)]
pub struct Pooler {
    /// The dense layer h → h.
    pub dense: Linear,
    cache: Cache<Saved>,
}

impl Pooler {
    /// A new pooler under `prefix`.
    pub fn new(prefix: &str, hidden: usize, init: &Init) -> Self {
        let name = format!("{prefix}.dense");
        Pooler {
            dense: Linear::new(&name, hidden, hidden, true, init),
            cache: Cache::new(&name),
        }
    }

    /// tanh(dense(x[:, 0])) for `x [B, T, h]`.
    pub fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let [b, seq, h] = x.shape().dims_n::<3>("pooler")?;
        let first = split_tokens(x, 1)?.0.reshape([b, h])?;
        let pooled = tanh(&self.dense.forward(&first, mode)?)?;
        if mode.is_train() {
            self.cache.push(Saved {
                pooled: pooled.clone(),
                seq,
            });
        }
        Ok(pooled)
    }

    /// Back-propagates `dpooled [B, h]`; returns dX `[B, T, h]` (zero beyond token 0).
    pub fn backward(&mut self, dpooled: &Tensor) -> Result<Tensor> {
        let Saved { pooled, seq } = self.cache.pop()?;
        let dfirst = self.dense.backward(&tanh_backward(&pooled, dpooled)?)?;
        let [b, h] = dfirst.shape().dims_n::<2>("pooler")?;
        let rest = Tensor::zeros_on([b, seq - 1, h], dfirst.dtype(), dfirst.device())?;
        concat_tokens(&dfirst.reshape([b, 1, h])?, &rest)
    }
}

impl Module for Pooler {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.dense.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.dense.visit_params_mut(f);
    }
}
