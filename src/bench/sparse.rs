//! The sparsity-vs-latency sweep of the sparse weight products (issue 4): every format
//! (dense, CSR, BSR-16, BSR-32, 2:4) × sparsity × weight shape × token count, for the three
//! products a sparse Linear layer trains with — forward `Y = X·Wᵀ`, input gradient
//! `dX = dY·W` and the sampled weight gradient `dW` (SDDMM) — beside this project's dense
//! kernel and the `gemm` crate, all measured in the same run.
//!
//! Useful FLOPs count only the kept weights: `2 · tokens · nnz` for every product (a
//! dense row counts `rows · cols` non-zeros), so a sparse kernel's GFLOP/s says how well it
//! turns skipped work into saved time.

use std::fmt;
use std::time::Duration;

use crate::error::Result;
use crate::gpu::cublas::Cublas;
use crate::ops::gemm::{gemm, MatView};
use crate::sparse::linear::SparseLinear;
use crate::sparse::random::{random_masked, Granularity};
use crate::sparse::{SparseFormat, SparseMatrix};
use crate::Device;

use super::report::SweepRow;
use super::sparse_gpu::GpuWorkload;
use super::{measure, Timing};
use crate::report::to_csv;

/// One of the three products of a sparse Linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseOp {
    /// `Y = X·Wᵀ`.
    Forward,
    /// `dX = dY·W`.
    BackwardInput,
    /// `dW = dYᵀ·X` at W's stored pattern (SDDMM).
    WeightGrad,
}

impl SparseOp {
    /// All three, in training order.
    pub const ALL: [SparseOp; 3] = [
        SparseOp::Forward,
        SparseOp::BackwardInput,
        SparseOp::WeightGrad,
    ];

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            SparseOp::Forward => "forward",
            SparseOp::BackwardInput => "backward_input",
            SparseOp::WeightGrad => "weight_grad",
        }
    }
}

/// A weight `[rows, cols]` (out × in features) applied to `tokens` token vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductShape {
    /// Output features (weight rows).
    pub rows: usize,
    /// Input features (weight columns).
    pub cols: usize,
    /// Token vectors per product.
    pub tokens: usize,
}

impl fmt::Display for ProductShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{} t{}", self.rows, self.cols, self.tokens)
    }
}

/// What computes a product: the `gemm` crate on the dense weight (the CPU reference bar),
/// cuBLAS on it (the vendor bar on CUDA devices), or this project's kernels in a given
/// format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// `gemm` crate, dense.
    GemmCrate,
    /// cuBLAS `cublasGemmEx`, dense bf16 with f32 output.
    Cublas,
    /// [`SparseLinear`] in this format.
    Ours(SparseFormat),
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kernel::GemmCrate => write!(f, "gemm-crate"),
            Kernel::Cublas => write!(f, "cublas"),
            Kernel::Ours(format) => write!(f, "{format}"),
        }
    }
}

/// The sweep: which shapes, formats, sparsities and products, and the time per case.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseSweep {
    /// Weight and token shapes.
    pub shapes: Vec<ProductShape>,
    /// Sparse formats besides the dense baselines (2:4 is only measured at 50%).
    pub formats: Vec<SparseFormat>,
    /// Sparsities in [0, 1).
    pub sparsities: Vec<f64>,
    /// Products to time.
    pub ops: Vec<SparseOp>,
    /// Time budget per case (median over the runs that fit, at least 5).
    pub budget: Duration,
    /// Seed of the random weights, patterns and activations.
    pub seed: u64,
}

/// The weights of the sweep: 768×768 (attention projections) and 3072×768 (FFN).
const WEIGHTS: [(usize, usize); 2] = [(768, 768), (3072, 768)];

impl SparseSweep {
    /// The sweep: {768×768, 3072×768} × {8, 128, 512} tokens × {dense, CSR, BSR-16,
    /// BSR-32, 2:4} × sparsity {0, 50, 70, 80, 90, 95, 98%} × the three products.
    pub fn standard() -> SparseSweep {
        SparseSweep {
            shapes: WEIGHTS
                .iter()
                .flat_map(|&(rows, cols)| {
                    [8, 128, 512].map(|tokens| ProductShape { rows, cols, tokens })
                })
                .collect(),
            formats: vec![
                SparseFormat::Csr,
                SparseFormat::Bsr(16),
                SparseFormat::Bsr(32),
                SparseFormat::Nm24,
            ],
            sparsities: vec![0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98],
            ops: SparseOp::ALL.to_vec(),
            budget: Duration::from_millis(250),
            seed: 7,
        }
    }

    /// A small sweep (ragged 200×120 weight, 24 tokens, three sparsities) for smoke tests
    /// and the emulator.
    pub fn quick() -> SparseSweep {
        SparseSweep {
            shapes: vec![ProductShape {
                rows: 200,
                cols: 120,
                tokens: 24,
            }],
            sparsities: vec![0.0, 0.5, 0.9],
            budget: Duration::from_millis(5),
            ..SparseSweep::standard()
        }
    }

    /// The (kernel, sparsity) pairs measured per shape on `device`: the dense baselines
    /// first (the `gemm` crate on the CPU, cuBLAS on a CUDA device that has it), then each
    /// format at each sparsity (2:4 at 50% only).
    pub fn kernels(&self, device: Device) -> Vec<(Kernel, f64)> {
        let mut out = vec![(Kernel::Ours(SparseFormat::Dense), 0.0)];
        match device {
            Device::Cpu => out.push((Kernel::GemmCrate, 0.0)),
            Device::Cuda(n) if Cublas::new(n).is_ok() => out.push((Kernel::Cublas, 0.0)),
            _ => {}
        }
        for &format in &self.formats {
            match format {
                SparseFormat::Dense => {}
                SparseFormat::Nm24 => out.push((Kernel::Ours(format), 0.5)),
                _ => out.extend(self.sparsities.iter().map(|&s| (Kernel::Ours(format), s))),
            }
        }
        out
    }

    /// Number of rows [`run_sparse_sweep`] produces on `device`.
    pub fn len(&self, device: Device) -> usize {
        self.shapes.len() * self.kernels(device).len() * self.ops.len()
    }
}

/// The random pattern granularity that suits `format` (blocks for BSR, 2:4 for N:M).
fn granularity(format: SparseFormat) -> Granularity {
    match format {
        SparseFormat::Bsr(b) => Granularity::Block(b),
        SparseFormat::Nm24 => Granularity::Nm24,
        _ => Granularity::Element,
    }
}

/// A prepared case: the weight in its kernel's form plus activations and outputs.
pub struct Workload {
    shape: ProductShape,
    weight: Prepared,
    nnz: usize,
    x: Vec<f32>,
    dy: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
}

/// The weight as a kernel consumes it.
enum Prepared {
    /// Row-major dense values and a dense gradient buffer for the `gemm` crate.
    Dense { w: Vec<f32>, dw: Vec<f32> },
    /// This project's CPU kernels.
    Sparse(Box<SparseLinear>),
    /// This project's GPU kernels (the activations live on the device).
    Gpu(Box<GpuWorkload>),
}

/// `n` random N(0, 1) f32 values.
fn randn(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..n).map(|_| rng.normal() as f32).collect()
}

impl Workload {
    /// Random weight of `sparsity` in `kernel`'s format, random activations, on `device`.
    pub fn new(
        device: Device,
        shape: ProductShape,
        kernel: Kernel,
        sparsity: f64,
        seed: u64,
    ) -> Result<Self> {
        let ProductShape { rows, cols, tokens } = shape;
        let format = match kernel {
            Kernel::GemmCrate | Kernel::Cublas => SparseFormat::Dense,
            Kernel::Ours(f) => f,
        };
        let masked = random_masked(rows, cols, sparsity, granularity(format), seed)?;
        let matrix = SparseMatrix::from_masked(format, masked)?;
        let nnz = matrix.stats().nnz;
        let (x, dy) = (
            randn(tokens * cols, seed ^ 1),
            randn(tokens * rows, seed ^ 2),
        );
        let weight = match kernel {
            _ if device.is_gpu() => {
                let vendor = kernel == Kernel::Cublas;
                Prepared::Gpu(Box::new(GpuWorkload::new(
                    device, &matrix, shape, &x, &dy, vendor,
                )?))
            }
            Kernel::Cublas => {
                return Err(crate::Error::invalid(
                    "cuBLAS is a baseline of CUDA devices only",
                ))
            }
            Kernel::GemmCrate => Prepared::Dense {
                w: matrix.to_dense().values().to_vec(),
                dw: vec![0.0; rows * cols],
            },
            Kernel::Ours(_) => Prepared::Sparse(Box::new(SparseLinear::new(&matrix)?)),
        };
        Ok(Workload {
            shape,
            weight,
            nnz,
            x,
            dy,
            y: vec![0.0; tokens * rows],
            dx: vec![0.0; tokens * cols],
        })
    }

    /// Stored non-zeros of the weight (the useful multiply-adds per token).
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Useful FLOPs of one product: `2 · tokens · nnz`.
    pub fn useful_flops(&self) -> f64 {
        2.0 * self.shape.tokens as f64 * self.nnz as f64
    }

    /// Runs one product once.
    pub fn run(&mut self, op: SparseOp) -> Result<()> {
        let ProductShape { rows, cols, tokens } = self.shape;
        let (x_v, y_v, w_v) = (
            MatView::row_major(tokens, cols),
            MatView::row_major(tokens, rows),
            MatView::row_major(rows, cols),
        );
        match (&mut self.weight, op) {
            (Prepared::Dense { w, .. }, SparseOp::Forward) => {
                gemm(&mut self.y, y_v, &self.x, x_v, w, w_v.t(), false, true)
            }
            (Prepared::Dense { w, .. }, SparseOp::BackwardInput) => {
                gemm(&mut self.dx, x_v, &self.dy, y_v, w, w_v, false, true)
            }
            (Prepared::Dense { dw, .. }, SparseOp::WeightGrad) => {
                gemm(dw, w_v, &self.dy, y_v.t(), &self.x, x_v, false, true)
            }
            (Prepared::Sparse(s), SparseOp::Forward) => s.forward(&self.x, tokens, &mut self.y)?,
            (Prepared::Sparse(s), SparseOp::BackwardInput) => {
                s.backward_input(&self.dy, tokens, &mut self.dx)?
            }
            (Prepared::Sparse(s), SparseOp::WeightGrad) => {
                std::hint::black_box(s.weight_grad(&self.x, &self.dy, tokens)?);
            }
            (Prepared::Gpu(g), op) => g.run(op)?,
        }
        Ok(())
    }
}

/// One measured case: a CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRow {
    /// The product.
    pub op: SparseOp,
    /// The kernel (format, or the `gemm` crate).
    pub kernel: Kernel,
    /// Weight and token shape.
    pub shape: ProductShape,
    /// Requested sparsity.
    pub sparsity: f64,
    /// Achieved density `nnz / (rows · cols)`.
    pub density: f64,
    /// Device name (`cpu`, …).
    pub device: String,
    /// The timing.
    pub timing: Timing,
    /// Useful GFLOP/s at the median (`2 · tokens · nnz / median`).
    pub gflops: f64,
    /// This project's dense kernel's median over this case's median (same shape and op,
    /// same run).
    pub speedup: f64,
    /// cuBLAS's median over this case's median (same shape and op, same run), where
    /// cuBLAS was measured.
    pub speedup_vs_cublas: Option<f64>,
}

/// Runs the sweep on `device`, calling `progress` after each case. Rows come shape by
/// shape with the dense baselines first. On the CPU the formats run on [`SparseLinear`]
/// (f32); on a GPU device on `GpuSparseLinear` (CSR f32, BSR and 2:4 bf16) beside the
/// dense bf16 tensor-core GEMM and, on a CUDA device with libcublas, cuBLAS bf16.
pub fn run_sparse_sweep(
    sweep: &SparseSweep,
    device: Device,
    progress: &mut dyn FnMut(&SparseRow),
) -> Result<Vec<SparseRow>> {
    let mut rows = Vec::with_capacity(sweep.len(device));
    for &shape in &sweep.shapes {
        let first = rows.len();
        for (kernel, sparsity) in sweep.kernels(device) {
            let mut work = Workload::new(device, shape, kernel, sparsity, sweep.seed)?;
            for &op in &sweep.ops {
                let timing = measure(sweep.budget, || work.run(op))?;
                let baseline = |k: Kernel| {
                    rows[first..]
                        .iter()
                        .find(|r: &&SparseRow| r.op == op && r.kernel == k)
                        .map(|r| r.timing.median_s)
                };
                let dense = baseline(Kernel::Ours(SparseFormat::Dense)).unwrap_or(timing.median_s);
                let vendor = match kernel {
                    Kernel::Cublas => Some(timing.median_s),
                    _ => baseline(Kernel::Cublas),
                };
                let row = SparseRow {
                    op,
                    kernel,
                    shape,
                    sparsity,
                    density: work.nnz() as f64 / (shape.rows * shape.cols) as f64,
                    device: device.to_string(),
                    timing,
                    gflops: work.useful_flops() / timing.median_s / 1e9,
                    speedup: dense / timing.median_s,
                    speedup_vs_cublas: vendor.map(|v| v / timing.median_s),
                };
                progress(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

impl SweepRow for SparseRow {
    fn case(&self) -> String {
        format!("{} {}", self.op.name(), self.shape)
    }
    fn kernel(&self) -> String {
        self.kernel.to_string()
    }
    fn is_baseline(&self) -> bool {
        self.kernel == Kernel::Ours(SparseFormat::Dense)
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

/// The CSV of a sweep: one line per (op, format, shape, sparsity, device).
pub fn sparse_csv(rows: &[SparseRow]) -> String {
    let header = [
        "op",
        "format",
        "rows",
        "cols",
        "tokens",
        "sparsity",
        "density",
        "device",
        "median_ms",
        "min_ms",
        "reps",
        "useful_gflops",
        "speedup_vs_dense",
        "speedup_vs_cublas",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.op.name().to_string(),
                r.kernel.to_string(),
                r.shape.rows.to_string(),
                r.shape.cols.to_string(),
                r.shape.tokens.to_string(),
                format!("{:.2}", r.sparsity),
                format!("{:.4}", r.density),
                r.device.clone(),
                format!("{:.4}", r.timing.median_s * 1e3),
                format!("{:.4}", r.timing.min_s * 1e3),
                r.timing.reps.to_string(),
                format!("{:.2}", r.gflops),
                format!("{:.3}", r.speedup),
                r.speedup_vs_cublas
                    .map_or_else(String::new, |v| format!("{v:.3}")),
            ]
        })
        .collect();
    to_csv(&header, &cells)
}
