//! Throughput of the dense GPU kernels on a real CUDA device (criterion; throughput is
//! reported in elements/s where one element is one FLOP, so Gelem/s reads as GFLOP/s):
//!
//! - GEMM 4096³, f32 (kernels/gemm_f32.cu) and bf16 inputs with f32 accumulation and output
//!   (kernels/gemm_tc.cu), each beside cuBLAS through cudarc (`cublasGemmEx` with the same
//!   input and output types) as the baseline measured in the same run;
//! - attention forward, sequence 2048, head dim 64, batch 16 × 16 heads (kernels/attention.cu,
//!   tensor-core bf16 and f32), FLOPs = 4·B·H·T²·D.
//!
//! After the criterion groups a summary prints TFLOP/s and our/cuBLAS ratios (median of
//! timed repetitions). Without a usable CUDA device (no driver, no GPU) the bench prints
//! one skip line and exits successfully; the emulator is far too slow to bench.
//!
//! Run: `cargo bench --bench gpu_dense`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use cudarc::driver::CudaSlice;
use half::bf16;
use sparsevlp::gpu::cublas::Cublas;
use sparsevlp::gpu::dense::attention::{self as gattn, AttentionShape};
use sparsevlp::gpu::dense::gemm::{self as ggemm, Gemm};
use sparsevlp::gpu::dense::HalfType;
use sparsevlp::gpu::{self, GpuBuffer, GpuContext};

/// GEMM size (M = N = K).
const GEMM_N: usize = 4096;
/// Attention: batch, heads, sequence length, head dim.
const ATTN: (usize, usize, usize, usize) = (16, 16, 2048, 64);
/// Timed repetitions of the summary.
const SUMMARY_REPS: usize = 20;

type Res<T> = std::result::Result<T, String>;

fn main() {
    let Some(device) = gpu::cuda::first_device() else {
        let why = gpu::cuda::probe()
            .problem
            .unwrap_or_else(|| "no CUDA device found".into());
        println!("gpu_dense benches skipped: no usable CUDA device ({why})");
        return;
    };
    let ctx = match GpuContext::get(device) {
        Ok(ctx) => ctx,
        Err(e) => {
            println!("gpu_dense benches skipped: CUDA device {device} could not be opened ({e})");
            return;
        }
    };
    if let Err(e) = run(ctx) {
        eprintln!("gpu_dense benches failed: {e}");
        std::process::exit(1);
    }
}

fn run(ctx: &'static GpuContext) -> Res<()> {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    let cublas = match Cublas::new(0) {
        Ok(c) => Some(c),
        Err(e) => {
            println!("gpu_dense: no cuBLAS baseline ({e})");
            None
        }
    };
    let gemm = GemmInputs::new(ctx, cublas.as_ref())?;
    let attn = AttnInputs::new(ctx)?;

    let flops = 2.0 * gemm.g.macs();
    let mut group = c.benchmark_group("gemm_4096");
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function("f32/sparsevlp", |b| {
        b.iter_custom(|n| gemm.time_f32(ctx, n))
    });
    group.bench_function("bf16/sparsevlp", |b| {
        b.iter_custom(|n| gemm.time_bf16(ctx, n))
    });
    if let Some(cublas) = &cublas {
        group.bench_function("f32/cublas", |b| {
            b.iter_custom(|n| time_cublas(cublas, n, |cb| gemm.blas_f32(cb)))
        });
        group.bench_function("bf16/cublas", |b| {
            b.iter_custom(|n| time_cublas(cublas, n, |cb| gemm.blas_bf16(cb)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("attention_forward_t2048_d64");
    group.throughput(Throughput::Elements(attn.shape.forward_flops() as u64));
    group.bench_function("bf16_tc/sparsevlp", |b| {
        b.iter_custom(|n| attn.time_tc(ctx, n))
    });
    group.bench_function("f32/sparsevlp", |b| {
        b.iter_custom(|n| attn.time_f32(ctx, n))
    });
    group.finish();
    c.final_summary();

    // Summary: medians of SUMMARY_REPS single runs, in TFLOP/s.
    let tflops = |f: f64, d: Duration| f / d.as_secs_f64() / 1e12;
    let median = |mut f: Box<dyn FnMut(u64) -> Duration + '_>| {
        let mut t: Vec<Duration> = (0..SUMMARY_REPS).map(|_| f(1)).collect();
        t.sort();
        t[t.len() / 2]
    };
    let ours_f32 = median(Box::new(|n| gemm.time_f32(ctx, n)));
    let ours_bf16 = median(Box::new(|n| gemm.time_bf16(ctx, n)));
    let (blas_f32, blas_bf16) = match &cublas {
        Some(cb) => (
            Some(median(Box::new(|n| {
                time_cublas(cb, n, |cb| gemm.blas_f32(cb))
            }))),
            Some(median(Box::new(|n| {
                time_cublas(cb, n, |cb| gemm.blas_bf16(cb))
            }))),
        ),
        None => (None, None),
    };
    let attn_tc = median(Box::new(|n| attn.time_tc(ctx, n)));
    let attn_f32 = median(Box::new(|n| attn.time_f32(ctx, n)));
    let af = attn.shape.forward_flops();
    println!("summary (median of {SUMMARY_REPS} runs, TFLOP/s):");
    for (name, ours, blas) in [("f32 ", ours_f32, blas_f32), ("bf16", ours_bf16, blas_bf16)] {
        let baseline = match blas {
            Some(t) => format!(
                ", cuBLAS {:.1} → {:.2} of cuBLAS",
                tflops(flops, t),
                t.as_secs_f64() / ours.as_secs_f64()
            ),
            None => String::new(),
        };
        println!(
            "  gemm {GEMM_N}³ {name}: sparsevlp {:.1}{baseline}",
            tflops(flops, ours)
        );
    }
    let (b, h, t, d) = ATTN;
    println!(
        "  attention forward B {b} H {h} T {t} D {d}: bf16 tensor cores {:.1}, f32 {:.1}",
        tflops(af, attn_tc),
        tflops(af, attn_f32)
    );
    Ok(())
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Random-ish f32 data (a cheap deterministic hash; values in [−1, 1)).
fn data(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| sparsevlp::rng::hash_uniform(seed, i as u64) * 2.0 - 1.0)
        .collect()
}

/// Runs `launch` `n` times and waits for the device.
fn timed(ctx: &GpuContext, n: u64, mut launch: impl FnMut() -> sparsevlp::Result<()>) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        launch().expect("launch");
    }
    ctx.synchronize().expect("synchronize");
    start.elapsed()
}

/// The 4096³ operands, for our kernels (GpuBuffers) and for cuBLAS (cudarc slices).
struct GemmInputs {
    g: Gemm,
    a32: GpuBuffer,
    b32: GpuBuffer,
    a16: GpuBuffer,
    b16: GpuBuffer,
    c: std::cell::RefCell<GpuBuffer>,
    blas: Option<BlasOperands>,
}

/// The GEMM operands in cudarc memory, for cuBLAS.
struct BlasOperands {
    a32: CudaSlice<f32>,
    b32: CudaSlice<f32>,
    a16: CudaSlice<bf16>,
    b16: CudaSlice<bf16>,
    c: std::cell::RefCell<CudaSlice<f32>>,
}

impl GemmInputs {
    fn new(ctx: &GpuContext, cublas: Option<&Cublas>) -> Res<Self> {
        let n = GEMM_N;
        let (a, b) = (data(n * n, 1), data(n * n, 2));
        let (a16, b16): (Vec<bf16>, Vec<bf16>) = (
            a.iter().map(|&x| bf16::from_f32(x)).collect(),
            b.iter().map(|&x| bf16::from_f32(x)).collect(),
        );
        let blas = match cublas {
            Some(cb) => Some(BlasOperands {
                a32: cb.upload(&a).map_err(err)?,
                b32: cb.upload(&b).map_err(err)?,
                a16: cb.upload(&a16).map_err(err)?,
                b16: cb.upload(&b16).map_err(err)?,
                c: std::cell::RefCell::new(cb.zeros_f32(n * n).map_err(err)?),
            }),
            None => None,
        };
        Ok(GemmInputs {
            // Row-major Y = X·Wᵀ, the linear layer's forward.
            g: Gemm::new(n, n, n).transposed(false, true),
            a32: ctx.upload(&a).map_err(err)?,
            b32: ctx.upload(&b).map_err(err)?,
            a16: ctx.upload(&a16).map_err(err)?,
            b16: ctx.upload(&b16).map_err(err)?,
            c: std::cell::RefCell::new(ctx.alloc_bytes(n * n * 4).map_err(err)?),
            blas,
        })
    }

    fn time_f32(&self, ctx: &GpuContext, n: u64) -> Duration {
        let mut c = self.c.borrow_mut();
        timed(ctx, n, || {
            ggemm::gemm_f32(ctx, &self.g, &self.a32, &self.b32, &mut c)
        })
    }

    fn time_bf16(&self, ctx: &GpuContext, n: u64) -> Duration {
        let mut c = self.c.borrow_mut();
        timed(ctx, n, || {
            ggemm::gemm_tc(ctx, HalfType::Bf16, &self.g, &self.a16, &self.b16, &mut c)
        })
    }
}

/// `n` runs of `gemm` on cuBLAS, then a wait for its stream.
fn time_cublas(
    cublas: &Cublas,
    n: u64,
    mut gemm: impl FnMut(&Cublas) -> sparsevlp::Result<()>,
) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        gemm(cublas).expect("cuBLAS");
    }
    cublas.synchronize().expect("synchronize");
    start.elapsed()
}

impl GemmInputs {
    /// The f32 baseline of [`GemmInputs::time_f32`] (cublasGemmEx, f32 in and out).
    fn blas_f32(&self, cublas: &Cublas) -> sparsevlp::Result<()> {
        let x = self.blas.as_ref().expect("cuBLAS operands");
        cublas.gemm(&self.g, &x.a32, &x.b32, &mut x.c.borrow_mut())
    }

    /// The bf16 baseline of [`GemmInputs::time_bf16`] (bf16 in, f32 out).
    fn blas_bf16(&self, cublas: &Cublas) -> sparsevlp::Result<()> {
        let x = self.blas.as_ref().expect("cuBLAS operands");
        cublas.gemm(&self.g, &x.a16, &x.b16, &mut x.c.borrow_mut())
    }
}

/// Attention operands (bf16 for the tensor-core kernel, f32 for the f32 kernel).
struct AttnInputs {
    shape: AttentionShape,
    q16: GpuBuffer,
    k16: GpuBuffer,
    v16: GpuBuffer,
    q32: GpuBuffer,
    k32: GpuBuffer,
    v32: GpuBuffer,
    out: std::cell::RefCell<(GpuBuffer, GpuBuffer)>,
}

impl AttnInputs {
    fn new(ctx: &GpuContext) -> Res<Self> {
        let (b, h, t, d) = ATTN;
        let shape = AttentionShape {
            batch: b,
            heads: h,
            tq: t,
            tk: t,
            head_dim: d,
        };
        let n = b * t * h * d;
        let up16 = |seed| {
            let v: Vec<bf16> = data(n, seed).iter().map(|&x| bf16::from_f32(x)).collect();
            ctx.upload(&v).map_err(err)
        };
        let up32 = |seed| ctx.upload(&data(n, seed)).map_err(err);
        Ok(AttnInputs {
            shape,
            q16: up16(3)?,
            k16: up16(4)?,
            v16: up16(5)?,
            q32: up32(3)?,
            k32: up32(4)?,
            v32: up32(5)?,
            out: std::cell::RefCell::new((
                ctx.alloc_bytes(n * 4).map_err(err)?,
                ctx.alloc_bytes(b * h * t * 4).map_err(err)?,
            )),
        })
    }

    fn time_tc(&self, ctx: &GpuContext, n: u64) -> Duration {
        let mut out = self.out.borrow_mut();
        let (o, lse) = &mut *out;
        timed(ctx, n, || {
            gattn::attention_forward_tc(
                ctx,
                HalfType::Bf16,
                &self.shape,
                &self.q16,
                &self.k16,
                &self.v16,
                None,
                o,
                lse,
            )
        })
    }

    fn time_f32(&self, ctx: &GpuContext, n: u64) -> Duration {
        let mut out = self.out.borrow_mut();
        let (o, lse) = &mut *out;
        timed(ctx, n, || {
            gattn::attention_forward(
                ctx,
                &self.shape,
                &self.q32,
                &self.k32,
                &self.v32,
                None,
                None,
                o,
                lse,
            )
        })
    }
}
