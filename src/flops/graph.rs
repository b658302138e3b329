//! The cost graph: every module of a model with its HF name prefix, modality tag,
//! parameter count and the matrix products it runs for a given input size.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::config::{Arch, DualStream, ModelConfig, SingleStream};
pub use crate::model::modality::Modality;
use crate::model::modality::ModelKind;

/// The kind of matrix product an [`Op`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// A linear layer (or a convolution as a matrix product): `2 · rows · in · out`.
    Linear,
    /// The two attention products QKᵀ and P·V: `2 · 2 · queries · keys · hidden`.
    Attention,
}

/// One matrix product of a module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// The HF name of the weight (linear) or of the attention module (attention); a
    /// shared weight applied twice (LXMERT cross-attention) appears twice.
    pub name: String,
    /// Linear layer or attention core.
    pub kind: OpKind,
    /// Whether the weight is pruned by the compression methods (attention and FFN
    /// projections, visual projection, pooler; not the classifier).
    pub prunable: bool,
    /// Dense FLOPs of the product for the whole batch.
    pub flops: u64,
}

/// A module of the model: a transformer layer, an embedding, a projection or a head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleCost {
    /// The HF name prefix, e.g. `lxmert.encoder.x_layers.2`.
    pub name: String,
    /// The modality tag.
    pub modality: Modality,
    /// Parameters (weights, biases, LayerNorms, embedding tables) as HF counts them.
    pub params: u64,
    /// Tokens the module processes for the whole batch when it is a skippable
    /// transformer layer (what a skip adapter would see); `None` otherwise.
    pub layer_tokens: Option<u64>,
    /// Residual blocks each token of a skippable layer passes through, the sites of
    /// parallel adapters: 2 in an encoder layer (attention, FFN), 3 in a cross-modality
    /// layer (cross-attention, self-attention, FFN); 0 for other modules.
    pub residual_blocks: u64,
    /// The matrix products.
    pub ops: Vec<Op>,
}

impl ModuleCost {
    /// Dense FLOPs of the module.
    pub fn flops(&self) -> u64 {
        self.ops.iter().map(|o| o.flops).sum()
    }
}

/// The visual input of a FLOP count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisualInput {
    /// Region features per image (dual-stream models).
    Regions(usize),
    /// Image height and width in pixels (single-stream models).
    Image {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
}

/// The input size a FLOP count is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlopInput {
    /// Examples per batch.
    pub batch: usize,
    /// Text tokens per example.
    pub text_len: usize,
    /// Regions or image size.
    pub visual: VisualInput,
}

impl FlopInput {
    /// Batch 1 with 20 tokens and the config's regions (dual-stream) or 40 tokens and a
    /// square image of the config's size (single-stream); fewer tokens where the config
    /// has fewer text positions.
    pub fn default_for(config: &ModelConfig) -> Self {
        let tokens = |n: usize| n.min(config.max_position_embeddings);
        match &config.arch {
            Arch::DualStream(d) => FlopInput {
                batch: 1,
                text_len: tokens(20),
                visual: VisualInput::Regions(d.regions),
            },
            Arch::SingleStream(s) => FlopInput {
                batch: 1,
                text_len: tokens(40),
                visual: VisualInput::Image {
                    height: s.image_size,
                    width: s.image_size,
                },
            },
        }
    }
}

/// Builds the ops of one module; `rows` are tokens per example, scaled by the batch.
struct Builder {
    kind: ModelKind,
    batch: u64,
    hidden: u64,
    ffn: u64,
}

impl Builder {
    /// The modality of a module the graph names (every such name is in the tables of
    /// [`ModelKind::modality_of`]; the tests check each one).
    fn tag(&self, name: &str) -> Modality {
        self.kind
            .modality_of(name)
            .expect("every module of the FLOP graph has a modality tag")
    }

    /// A module with no matrix products (embedding tables, a LayerNorm).
    fn table(&self, name: &str, params: u64) -> ModuleCost {
        ModuleCost {
            name: name.to_string(),
            modality: self.tag(name),
            params,
            layer_tokens: None,
            residual_blocks: 0,
            ops: Vec::new(),
        }
    }

    fn linear(&self, name: String, rows: usize, inp: u64, out: u64, prunable: bool) -> Op {
        Op {
            name,
            kind: OpKind::Linear,
            prunable,
            flops: 2 * self.batch * rows as u64 * inp * out,
        }
    }

    fn attention(&self, name: String, queries: usize, keys: usize) -> Op {
        Op {
            name,
            kind: OpKind::Attention,
            prunable: false,
            flops: 2 * 2 * self.batch * queries as u64 * keys as u64 * self.hidden,
        }
    }

    /// Q, K, V projections, attention core and output projection: queries from a stream
    /// of `q` tokens attend to a stream of `k` tokens.
    /// `att` names the module holding the Q, K, V projections; `out` the output weight.
    fn attention_block(&self, ops: &mut Vec<Op>, att: &str, out: &str, q: usize, k: usize) {
        let h = self.hidden;
        ops.push(self.linear(format!("{att}.query"), q, h, h, true));
        ops.push(self.linear(format!("{att}.key"), k, h, h, true));
        ops.push(self.linear(format!("{att}.value"), k, h, h, true));
        ops.push(self.attention(att.to_string(), q, k));
        ops.push(self.linear(out.to_string(), q, h, h, true));
    }

    /// The two FFN projections over `rows` tokens.
    fn ffn(&self, ops: &mut Vec<Op>, up: String, down: String, rows: usize) {
        ops.push(self.linear(up, rows, self.hidden, self.ffn, true));
        ops.push(self.linear(down, rows, self.ffn, self.hidden, true));
    }

    /// A post-LN BERT layer (LXMERT language and visual layers) over `rows` tokens.
    fn bert_layer(&self, name: String, rows: usize, params: u64) -> ModuleCost {
        let mut ops = Vec::new();
        let att = format!("{name}.attention.self");
        let out = format!("{name}.attention.output.dense");
        self.attention_block(&mut ops, &att, &out, rows, rows);
        self.ffn(
            &mut ops,
            format!("{name}.intermediate.dense"),
            format!("{name}.output.dense"),
            rows,
        );
        ModuleCost {
            modality: self.tag(&name),
            name,
            params,
            layer_tokens: Some(self.batch * rows as u64),
            residual_blocks: 2,
            ops,
        }
    }
}

/// Every module of `config` with its ops for `input`; errors when the input does not
/// fit the model (regions for a single-stream model, text longer than the positions).
pub fn build(config: &ModelConfig, input: &FlopInput) -> Result<Vec<ModuleCost>> {
    config.validate()?;
    if input.batch == 0 || input.text_len == 0 {
        return Err(Error::invalid(
            "flops: batch and text length must be positive",
        ));
    }
    if input.text_len > config.max_position_embeddings {
        return Err(Error::invalid(format!(
            "flops: text length {} exceeds max_position_embeddings {}",
            input.text_len, config.max_position_embeddings
        )));
    }
    let b = Builder {
        kind: ModelKind::of(&config.arch),
        batch: input.batch as u64,
        hidden: config.hidden as u64,
        ffn: config.ffn as u64,
    };
    match (&config.arch, input.visual) {
        (Arch::DualStream(d), VisualInput::Regions(r)) if r > 0 => {
            Ok(dual_stream(config, d, &b, input.text_len, r))
        }
        (Arch::SingleStream(s), VisualInput::Image { height, width })
            if s.patches(height, width) > 0 =>
        {
            Ok(single_stream(config, s, &b, input.text_len, height, width))
        }
        (Arch::DualStream(_), _) => Err(Error::invalid(
            "flops: a dual-stream model takes a positive number of regions, not an image size",
        )),
        (Arch::SingleStream(s), _) => Err(Error::invalid(format!(
            "flops: a single-stream model takes an image size of at least one {0}×{0} patch, not regions",
            s.patch_size
        ))),
    }
}

/// Parameters of a post-LN BERT layer: Q, K, V, O with biases, FFN with biases, two LNs.
fn bert_layer_params(h: u64, f: u64) -> u64 {
    4 * (h * h + h) + 2 * h + (h * f + f) + (f * h + h) + 2 * h
}

/// The LXMERT modules (`LxmertForQuestionAnswering`).
fn dual_stream(
    c: &ModelConfig,
    d: &DualStream,
    b: &Builder,
    t: usize,
    r: usize,
) -> Vec<ModuleCost> {
    let (h, f) = (b.hidden, b.ffn);
    let layer = bert_layer_params(h, f);
    let mut m = vec![b.table(
        "lxmert.embeddings",
        (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) as u64 * h + 2 * h,
    )];
    for i in 0..d.l_layers {
        m.push(b.bert_layer(format!("lxmert.encoder.layer.{i}"), t, layer));
    }
    let (fd, pd) = (d.visual_feat_dim as u64, d.visual_pos_dim as u64);
    m.push(ModuleCost {
        name: "lxmert.encoder.visn_fc".into(),
        modality: b.tag("lxmert.encoder.visn_fc"),
        params: (fd * h + h) + 2 * h + (pd * h + h) + 2 * h,
        layer_tokens: None,
        residual_blocks: 0,
        ops: vec![
            b.linear("lxmert.encoder.visn_fc.visn_fc".into(), r, fd, h, true),
            b.linear("lxmert.encoder.visn_fc.box_fc".into(), r, pd, h, true),
        ],
    });
    for i in 0..d.r_layers {
        m.push(b.bert_layer(format!("lxmert.encoder.r_layers.{i}"), r, layer));
    }
    for i in 0..d.x_layers {
        let name = format!("lxmert.encoder.x_layers.{i}");
        let mut ops = Vec::new();
        // One cross-attention, its weights shared by both directions.
        let att = format!("{name}.visual_attention.att");
        let out = format!("{name}.visual_attention.output.dense");
        b.attention_block(&mut ops, &att, &out, t, r);
        b.attention_block(&mut ops, &att, &out, r, t);
        for (stream, rows) in [("lang", t), ("visn", r)] {
            let att = format!("{name}.{stream}_self_att.self");
            let out = format!("{name}.{stream}_self_att.output.dense");
            b.attention_block(&mut ops, &att, &out, rows, rows);
        }
        for (stream, rows) in [("lang", t), ("visn", r)] {
            b.ffn(
                &mut ops,
                format!("{name}.{stream}_inter.dense"),
                format!("{name}.{stream}_output.dense"),
                rows,
            );
        }
        let attention_layer = 4 * (h * h + h) + 2 * h;
        let ffn_part = (h * f + f) + (f * h + h) + 2 * h;
        m.push(ModuleCost {
            modality: b.tag(&name),
            name,
            params: 3 * attention_layer + 2 * ffn_part,
            layer_tokens: Some(b.batch * (t + r) as u64),
            residual_blocks: 3,
            ops,
        });
    }
    m.extend(heads(
        b,
        "lxmert.pooler",
        "answer_head",
        "answer_head.logit_fc",
        c.answers,
    ));
    m
}

/// The pooler (tanh(Linear) on token 0) and the two-layer answer classifier.
fn heads(b: &Builder, pooler: &str, head: &str, fc: &str, answers: usize) -> [ModuleCost; 2] {
    let (h, a) = (b.hidden, answers as u64);
    [
        ModuleCost {
            name: pooler.to_string(),
            modality: b.tag(pooler),
            params: h * h + h,
            layer_tokens: None,
            residual_blocks: 0,
            ops: vec![b.linear(format!("{pooler}.dense"), 1, h, h, true)],
        },
        ModuleCost {
            name: head.to_string(),
            modality: b.tag(head),
            params: (h * 2 * h + 2 * h) + 4 * h + (2 * h * a + a),
            layer_tokens: None,
            residual_blocks: 0,
            ops: vec![
                b.linear(format!("{fc}.0"), 1, h, 2 * h, false),
                b.linear(format!("{fc}.3"), 1, 2 * h, a, false),
            ],
        },
    ]
}

/// The ViLT modules (`ViltForQuestionAnswering`).
fn single_stream(
    c: &ModelConfig,
    s: &SingleStream,
    b: &Builder,
    t: usize,
    height: usize,
    width: usize,
) -> Vec<ModuleCost> {
    let (h, f) = (b.hidden, b.ffn);
    let patch_in = (s.num_channels * s.patch_size * s.patch_size) as u64;
    let table_patches = s.patches(s.image_size, s.image_size) as u64;
    let seq = t + s.image_tokens(height, width);
    let qkv_bias = if s.qkv_bias { 3 * h } else { 0 };
    let layer = 2 * h + 3 * h * h + qkv_bias + (h * h + h) + 2 * h + (h * f + f) + (f * h + h);
    let mut m = vec![
        b.table(
            "vilt.embeddings.text_embeddings",
            (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) as u64 * h + 2 * h,
        ),
        ModuleCost {
            name: "vilt.embeddings.patch_embeddings".into(),
            modality: b.tag("vilt.embeddings.patch_embeddings"),
            params: patch_in * h + h,
            layer_tokens: None,
            residual_blocks: 0,
            ops: vec![b.linear(
                "vilt.embeddings.patch_embeddings.projection".into(),
                s.patches(height, width),
                patch_in,
                h,
                true,
            )],
        },
        // The image CLS, the patch position table and the modality-type embeddings.
        b.table(
            "vilt.embeddings",
            h + (table_patches + 1) * h + s.modality_type_vocab_size as u64 * h,
        ),
    ];
    for i in 0..s.layers {
        let name = format!("vilt.encoder.layer.{i}");
        let mut ops = Vec::new();
        let att = format!("{name}.attention.attention");
        let out = format!("{name}.attention.output.dense");
        b.attention_block(&mut ops, &att, &out, seq, seq);
        b.ffn(
            &mut ops,
            format!("{name}.intermediate.dense"),
            format!("{name}.output.dense"),
            seq,
        );
        m.push(ModuleCost {
            modality: b.tag(&name),
            name,
            params: layer,
            layer_tokens: Some(b.batch * seq as u64),
            residual_blocks: 2,
            ops,
        });
    }
    m.push(b.table("vilt.layernorm", 2 * h));
    m.extend(heads(
        b,
        "vilt.pooler",
        "classifier",
        "classifier",
        c.answers,
    ));
    m
}
