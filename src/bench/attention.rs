//! The block-sparse attention sweep (issue 4): random block layouts at block sparsity
//! 0–90% against dense multi-head attention, forward and backward, at sequence lengths
//! 256–2048 (12 heads of 64, batch 1), measured in the same run.
//!
//! Useful FLOPs count only the computed blocks: the forward's two products are
//! `4 · B · H · D · (active pairs)` where the active pairs are `density · Tq · Tk`; the
//! backward's four products are twice that.

use std::fmt;
use std::time::Duration;

use crate::error::Result;
use crate::ops::attention::{attention, attention_backward, AttentionSaved};
use crate::ops::block_sparse_attention::{
    block_sparse_attention, block_sparse_attention_backward, BlockSparseSaved,
};
use crate::sparse::attention::{BlockGrid, BlockLayout};
use crate::{DType, Device, Tensor};

use super::report::SweepRow;
use super::{measure, Timing};
use crate::report::to_csv;

/// Forward or backward of attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionOp {
    /// The output from Q, K, V.
    Forward,
    /// dQ, dK, dV from the output gradient (the forward's saved state reused).
    Backward,
}

impl AttentionOp {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            AttentionOp::Forward => "forward",
            AttentionOp::Backward => "backward",
        }
    }

    /// FLOPs of the products relative to the forward's.
    fn flop_factor(self) -> f64 {
        match self {
            AttentionOp::Forward => 1.0,
            AttentionOp::Backward => 2.0,
        }
    }
}

/// Dense attention (the baseline) or block-sparse attention with this block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// `ops::attention`.
    Dense,
    /// `ops::block_sparse_attention` over a random layout with blocks of this size.
    BlockSparse(usize),
}

impl fmt::Display for AttentionKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttentionKernel::Dense => write!(f, "dense"),
            AttentionKernel::BlockSparse(b) => write!(f, "block{b}-random"),
        }
    }
}

/// The sweep's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionSweep {
    /// Sequence lengths (self-attention, Tq = Tk); sparsities a length's block grid cannot
    /// reach (the diagonal blocks are always kept) are left out.
    pub seqs: Vec<usize>,
    /// Block sparsities in [0, 1).
    pub sparsities: Vec<f64>,
    /// Block size of the layouts.
    pub block: usize,
    /// Examples per batch.
    pub batch: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Forward, backward or both.
    pub ops: Vec<AttentionOp>,
    /// Time budget per case.
    pub budget: Duration,
    /// Seed of layouts and inputs.
    pub seed: u64,
}

impl AttentionSweep {
    /// The sweep: seq {256, 512, 1024, 2048} × block sparsity {0, 25, 50, 75, 90%},
    /// 12 heads of 64, batch 1, blocks of 64.
    pub fn standard() -> AttentionSweep {
        AttentionSweep {
            seqs: vec![256, 512, 1024, 2048],
            sparsities: vec![0.0, 0.25, 0.5, 0.75, 0.9],
            block: 64,
            batch: 1,
            heads: 12,
            head_dim: 64,
            ops: vec![AttentionOp::Forward, AttentionOp::Backward],
            budget: Duration::from_millis(300),
            seed: 7,
        }
    }

    /// A small sweep (ragged seq 200, blocks of 32, 2 heads) for smoke tests.
    pub fn quick() -> AttentionSweep {
        AttentionSweep {
            seqs: vec![200],
            sparsities: vec![0.0, 0.5, 0.75],
            block: 32,
            heads: 2,
            budget: Duration::from_millis(5),
            ..AttentionSweep::standard()
        }
    }

    /// The (kernel, sparsity) pairs measured at sequence length `seq`: dense attention
    /// first, then the block-sparse layouts whose density can still hold the diagonal
    /// blocks (at most `1 − 1/blocks` sparsity: 90% needs at least 10 blocks per row).
    pub fn kernels(&self, seq: usize) -> Vec<(AttentionKernel, f64)> {
        let blocks = seq.div_ceil(self.block.max(1)).max(1) as f64;
        let mut out = vec![(AttentionKernel::Dense, 0.0)];
        out.extend(
            self.sparsities
                .iter()
                .filter(|&&s| 1.0 - s >= 1.0 / blocks - 1e-9)
                .map(|&s| (AttentionKernel::BlockSparse(self.block), s)),
        );
        out
    }

    /// Number of rows [`run_attention_sweep`] produces.
    pub fn len(&self) -> usize {
        let cases: usize = self.seqs.iter().map(|&t| self.kernels(t).len()).sum();
        cases * self.ops.len()
    }

    /// Whether the sweep measures nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One measured case: a CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionRow {
    /// Forward or backward.
    pub op: AttentionOp,
    /// Dense or block-sparse.
    pub layout: AttentionKernel,
    /// Sequence length.
    pub seq: usize,
    /// Requested block sparsity.
    pub sparsity: f64,
    /// Achieved fraction of computed blocks.
    pub density: f64,
    /// Device name.
    pub device: String,
    /// The timing.
    pub timing: Timing,
    /// Useful GFLOP/s (computed blocks only).
    pub gflops: f64,
    /// Dense attention's median over this case's (same seq and op, same run).
    pub speedup: f64,
}

/// Saved forward state of either kernel.
enum Saved {
    Dense(AttentionSaved),
    Sparse(BlockSparseSaved),
}

/// A prepared case: random Q, K, V and output gradient, the layout, and (once a backward
/// has run) the forward's saved state.
pub struct AttentionWorkload {
    device: Device,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dout: Tensor,
    heads: usize,
    layout: Option<BlockLayout>,
    saved: Option<Saved>,
}

impl AttentionWorkload {
    /// The case `kernel` at `sparsity` and sequence length `seq` with the sweep's batch,
    /// heads, head width, block size and seed, with its tensors on `device`.
    pub fn new(
        sweep: &AttentionSweep,
        seq: usize,
        kernel: AttentionKernel,
        sparsity: f64,
        device: Device,
    ) -> Result<AttentionWorkload> {
        let (b, h, d) = (sweep.batch, sweep.heads, sweep.head_dim);
        let input = |salt: u64| {
            Tensor::randn([b, seq, h * d], 1.0, sweep.seed ^ salt, DType::F32).to_device(device)
        };
        let layout = match kernel {
            AttentionKernel::Dense => None,
            AttentionKernel::BlockSparse(block) => Some(BlockLayout::random_density(
                BlockGrid::new(block, seq, seq)?,
                1.0 - sparsity,
                sweep.seed,
            )?),
        };
        Ok(AttentionWorkload {
            device,
            q: input(1)?,
            k: input(2)?,
            v: input(3)?,
            dout: input(4)?,
            heads: h,
            layout,
            saved: None,
        })
    }

    /// Fraction of (query, key) block pairs computed.
    pub fn density(&self) -> f64 {
        self.layout.as_ref().map_or(1.0, BlockLayout::density)
    }

    /// FLOPs of the computed blocks' products for `op`.
    pub fn useful_flops(&self, op: AttentionOp) -> f64 {
        let [b, t, hd] = [self.q.dims()[0], self.q.dims()[1], self.q.dims()[2]];
        4.0 * (b * hd) as f64 * (t * t) as f64 * self.density() * op.flop_factor()
    }

    fn forward(&self) -> Result<Saved> {
        let (q, k, v, h) = (&self.q, &self.k, &self.v, self.heads);
        Ok(match &self.layout {
            None => Saved::Dense(attention(q, k, v, h, None, None)?.1),
            Some(l) => Saved::Sparse(block_sparse_attention(q, k, v, h, l, None)?.1),
        })
    }

    /// Runs `op` once (a backward reuses one saved forward) and waits for a GPU device.
    pub fn run(&mut self, op: AttentionOp) -> Result<()> {
        self.run_async(op)?;
        if self.device.is_gpu() {
            crate::gpu::GpuContext::get(self.device)?.synchronize()?;
        }
        Ok(())
    }

    fn run_async(&mut self, op: AttentionOp) -> Result<()> {
        match op {
            AttentionOp::Forward => drop(std::hint::black_box(self.forward()?)),
            AttentionOp::Backward => {
                let saved = match self.saved.take() {
                    Some(saved) => saved,
                    None => self.forward()?,
                };
                let (q, k, v, dout) = (&self.q, &self.k, &self.v, &self.dout);
                let grads = match &saved {
                    Saved::Dense(s) => attention_backward(q, k, v, s, dout)?,
                    Saved::Sparse(s) => block_sparse_attention_backward(q, k, v, s, dout)?,
                };
                self.saved = Some(saved);
                std::hint::black_box(grads);
            }
        }
        Ok(())
    }
}

/// Runs the sweep on `device` (flash kernels on GPU devices), calling `progress` after
/// each case.
pub fn run_attention_sweep(
    sweep: &AttentionSweep,
    device: Device,
    progress: &mut dyn FnMut(&AttentionRow),
) -> Result<Vec<AttentionRow>> {
    let mut rows = Vec::with_capacity(sweep.len());
    for &seq in &sweep.seqs {
        let first = rows.len();
        for (kernel, sparsity) in sweep.kernels(seq) {
            let mut work = AttentionWorkload::new(sweep, seq, kernel, sparsity, device)?;
            for &op in &sweep.ops {
                let timing = measure(sweep.budget, || work.run(op))?;
                let dense = rows[first..]
                    .iter()
                    .find(|r: &&AttentionRow| r.op == op && r.layout == AttentionKernel::Dense)
                    .map_or(timing.median_s, |r| r.timing.median_s);
                let row = AttentionRow {
                    op,
                    layout: kernel,
                    seq,
                    sparsity,
                    density: work.density(),
                    device: device.to_string(),
                    timing,
                    gflops: work.useful_flops(op) / timing.median_s / 1e9,
                    speedup: dense / timing.median_s,
                };
                progress(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

impl SweepRow for AttentionRow {
    fn case(&self) -> String {
        format!("{} seq {}", self.op.name(), self.seq)
    }
    fn kernel(&self) -> String {
        self.layout.to_string()
    }
    fn is_baseline(&self) -> bool {
        self.layout == AttentionKernel::Dense
    }
    fn sparsity(&self) -> f64 {
        self.sparsity
    }
    fn median_s(&self) -> f64 {
        self.timing.median_s
    }
    fn gflops(&self) -> f64 {
        self.gflops
    }
    fn speedup(&self) -> f64 {
        self.speedup
    }
}

/// The CSV of a sweep: one line per (op, layout, seq, sparsity, device).
pub fn attention_csv(rows: &[AttentionRow]) -> String {
    let header = [
        "op",
        "layout",
        "seq",
        "sparsity",
        "density",
        "device",
        "median_ms",
        "min_ms",
        "reps",
        "useful_gflops",
        "speedup_vs_dense",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.op.name().to_string(),
                r.layout.to_string(),
                r.seq.to_string(),
                format!("{:.2}", r.sparsity),
                format!("{:.4}", r.density),
                r.device.clone(),
                format!("{:.4}", r.timing.median_s * 1e3),
                format!("{:.4}", r.timing.min_s * 1e3),
                r.timing.reps.to_string(),
                format!("{:.2}", r.gflops),
                format!("{:.3}", r.speedup),
            ]
        })
        .collect();
    to_csv(&header, &cells)
}
