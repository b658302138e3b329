//! BERT-style text embeddings shared by both model kinds: word, position and
//! token-type (segment) tables summed, then LayerNorm and dropout. ViLT names them
//! `vilt.embeddings.text_embeddings`, LXMERT `lxmert.embeddings`.

use super::config::ModelConfig;
use crate::error::{Error, Result};
use crate::nn::{Dropout, Embedding, Init, LayerNorm, Mode, Module, Param};
use crate::ops::elementwise::add;
use crate::tensor::Tensor;

/// The text embeddings under one HF prefix.
#[derive(Debug, Clone)]
pub struct TextEmbeddings {
    /// `{prefix}.word_embeddings`.
    pub word_embeddings: Embedding,
    /// `{prefix}.position_embeddings`.
    pub position_embeddings: Embedding,
    /// `{prefix}.token_type_embeddings` (segments).
    pub token_type_embeddings: Embedding,
    /// `{prefix}.LayerNorm`.
    pub norm: LayerNorm,
    dropout: Dropout,
}

impl TextEmbeddings {
    /// New embeddings named `prefix` with the config's vocabulary, positions and segments.
    pub fn new(prefix: &str, config: &ModelConfig, init: &Init) -> Self {
        let h = config.hidden;
        let table = |part: &str, rows| Embedding::new(&format!("{prefix}.{part}"), rows, h, init);
        TextEmbeddings {
            word_embeddings: table("word_embeddings", config.vocab_size),
            position_embeddings: table("position_embeddings", config.max_position_embeddings),
            token_type_embeddings: table("token_type_embeddings", config.type_vocab_size),
            norm: LayerNorm::new(
                &format!("{prefix}.LayerNorm"),
                h,
                config.layer_norm_eps,
                init,
            ),
            dropout: Dropout::new(&format!("{prefix}.dropout"), config.hidden_dropout),
        }
    }

    /// Checks the text inputs of a batch: `attention_mask [B, T]` with `T ≥ 1` and at
    /// most the table's positions, and `B·T` word and segment ids. Returns `(B, T)`;
    /// errors (under the op name `op`) name the offending tensor.
    pub fn check_inputs(
        &self,
        op: &str,
        input_ids: &[u32],
        attention_mask: &Tensor,
        token_type_ids: &[u32],
    ) -> Result<(usize, usize)> {
        let [b, t] = attention_mask.shape().dims_n::<2>("attention_mask")?;
        if t == 0 {
            return Err(Error::shape(
                op,
                "attention_mask: found no text tokens [B, 0]",
            ));
        }
        for (name, ids) in [("input_ids", input_ids), ("token_type_ids", token_type_ids)] {
            if ids.len() != b * t {
                return Err(Error::shape(
                    op,
                    format!(
                        "{name}: expected {} ids ([{b}, {t}] like attention_mask), found {}",
                        b * t,
                        ids.len()
                    ),
                ));
            }
        }
        let max_t = self.position_embeddings.weight.value.dims()[0];
        if t > max_t {
            return Err(Error::shape(
                op,
                format!("input_ids: {t} tokens exceed the {max_t} text positions"),
            ));
        }
        Ok((b, t))
    }

    /// Embeds row-major `[b, t]` word and segment ids (checked by the caller): returns
    /// `[b, t, h]`.
    pub fn forward(
        &mut self,
        input_ids: &[u32],
        token_type_ids: &[u32],
        (b, t): (usize, usize),
        mode: Mode,
    ) -> Result<Tensor> {
        let words = self.word_embeddings.forward(input_ids, &[b, t], mode)?;
        let pos = self
            .position_embeddings
            .forward(&token_positions(b, t), &[b, t], mode)?;
        let segs = self
            .token_type_embeddings
            .forward(token_type_ids, &[b, t], mode)?;
        let x = self.norm.forward(&add(&add(&words, &pos)?, &segs)?, mode)?;
        self.dropout.forward(x, mode)
    }

    /// Back-propagates `dy [b, t, h]` into the three tables and the LayerNorm.
    pub fn backward(&mut self, dy: Tensor) -> Result<()> {
        let dsum = self.norm.backward(&self.dropout.backward(dy)?)?;
        self.token_type_embeddings.backward(&dsum)?;
        self.position_embeddings.backward(&dsum)?;
        self.word_embeddings.backward(&dsum)
    }
}

impl Module for TextEmbeddings {
    fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
        self.word_embeddings.visit_params(f);
        self.position_embeddings.visit_params(f);
        self.token_type_embeddings.visit_params(f);
        self.norm.visit_params(f);
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.word_embeddings.visit_params_mut(f);
        self.position_embeddings.visit_params_mut(f);
        self.token_type_embeddings.visit_params_mut(f);
        self.norm.visit_params_mut(f);
    }
}

/// Position ids `0..len` for each of `batch` sequences.
pub(crate) fn token_positions(batch: usize, len: usize) -> Vec<u32> {
    (0..batch).flat_map(|_| 0..len as u32).collect()
}
