//! The GPU kernel test harness shared by the kernel tests (gpu_dense, gpu_sparse): the
//! test devices, a runner that executes a case under both emulator schedules and compares
//! them, poisoned output buffers, random inputs and relative-error checks.

use std::sync::OnceLock;

use half::{bf16, f16};
use sparsevlp::gpu::dense::HalfType;
use sparsevlp::gpu::emu::{with_schedule, Schedule};
use sparsevlp::gpu::{self, GpuBuffer, GpuContext};
use sparsevlp::{DType, Device, Result, Tensor};

/// Relative tolerance of f32 kernels.
pub const TOL_F32: f64 = 1e-5;
/// Relative tolerance of kernels with bf16/f16 inputs against the full-precision reference.
pub const TOL_HALF: f64 = 1e-2;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

pub fn devices() -> &'static [Device] {
    static DEVICES: OnceLock<Vec<Device>> = OnceLock::new();
    DEVICES.get_or_init(gpu::test_devices)
}

/// How the two emulator schedules must agree.
#[derive(Clone, Copy)]
pub enum Agree {
    /// Bit for bit.
    Exactly,
    /// Within a relative tolerance (kernels whose atomics make the order of additions
    /// schedule-dependent).
    Within(f64),
}

/// Runs `run` on every test device and returns its outputs per device. On the emulator it
/// runs under both schedules, which must agree as `agree` says.
pub fn on_devices<F>(what: &str, agree: Agree, run: F) -> Vec<(Device, Vec<Vec<f32>>)>
where
    F: Fn(&GpuContext) -> Result<Vec<Vec<f32>>>,
{
    let mut out = Vec::new();
    for &dev in devices() {
        let ctx = GpuContext::get(dev).unwrap_or_else(|e| panic!("{what}: {dev}: {e}"));
        let first = with_schedule(Schedule::Ascending, || run(ctx))
            .unwrap_or_else(|e| panic!("{what} on {dev}: {e}"));
        if dev == Device::Emu {
            let second = with_schedule(Schedule::Descending, || run(ctx))
                .unwrap_or_else(|e| panic!("{what} on {dev} (descending): {e}"));
            for (i, (a, b)) in first.iter().zip(&second).enumerate() {
                match agree {
                    Agree::Exactly => {
                        let same = a.len() == b.len()
                            && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(
                            same,
                            "{what}: output {i} differs between the ascending and the \
                             descending schedule (a missing barrier?)"
                        );
                    }
                    Agree::Within(tol) => {
                        let reference: Vec<f64> = a.iter().map(|&v| v as f64).collect();
                        let err = rel_err(b, &reference);
                        assert!(err <= tol, "{what}: schedules differ by {err:e}");
                    }
                }
            }
        }
        out.push((dev, first));
    }
    out
}

/// ‖out − ref‖ / ‖ref‖ (absolute when the reference is zero).
pub fn rel_err(out: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(out.len(), reference.len(), "output length");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&o, &r) in out.iter().zip(reference) {
        num += (o as f64 - r) * (o as f64 - r);
        den += r * r;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Fails unless every element was written (no NaN left from the poison) and the relative
/// error is within `tol`.
pub fn check(what: &str, dev: Device, out: &[f32], reference: &[f64], tol: f64) {
    if let Some(i) = out.iter().position(|v| v.is_nan()) {
        panic!(
            "{what} on {dev}: element {i} of {} is NaN (not written?)",
            out.len()
        );
    }
    let err = rel_err(out, reference);
    assert!(
        err <= tol,
        "{what} on {dev}: relative error {err:e} > {tol:e} ({} elements)",
        out.len()
    );
}

/// Normal samples N(0, std²) (f32), seeded.
pub fn randn(n: usize, std: f64, seed: u64) -> Vec<f32> {
    Tensor::randn([n], std, seed, DType::F32).to_vec_f32()
}

/// Uniform samples in [lo, hi) (f32), seeded.
pub fn uniform(n: usize, lo: f64, hi: f64, seed: u64) -> Vec<f32> {
    Tensor::uniform([n], lo, hi, seed, DType::F32).to_vec_f32()
}

/// An f64 CPU tensor of f32 values.
pub fn t64(data: &[f32], dims: &[usize]) -> Tensor {
    Tensor::from_vec(
        data.iter().map(|&v| v as f64).collect::<Vec<f64>>(),
        dims.to_vec(),
    )
    .unwrap()
}

/// A device buffer of `elems` f32 (or u32) poisoned with 0xFF bytes.
pub fn poisoned(ctx: &GpuContext, elems: usize) -> Result<GpuBuffer> {
    let mut b = ctx.alloc_bytes(elems * 4)?;
    ctx.fill_bytes(&mut b, 0xFF)?;
    Ok(b)
}

pub fn down(ctx: &GpuContext, b: &GpuBuffer) -> Result<Vec<f32>> {
    ctx.download::<f32>(b)
}

pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Rounds f32 values to a 16-bit type; returns the raw bits and the rounded values.
pub fn round_half(v: &[f32], dtype: HalfType) -> (Vec<u16>, Vec<f32>) {
    match dtype {
        HalfType::Bf16 => v
            .iter()
            .map(|&x| {
                let h = bf16::from_f32(x);
                (h.to_bits(), h.to_f32())
            })
            .unzip(),
        HalfType::F16 => v
            .iter()
            .map(|&x| {
                let h = f16::from_f32(x);
                (h.to_bits(), h.to_f32())
            })
            .unzip(),
    }
}
