//! The dense GPU kernels (kernels/*.cu through `sparsevlp::gpu::dense`) against the CPU
//! ops, on every test device: the emulator always, a CUDA GPU when one is usable.
//!
//! Every case uses fresh random inputs (never zeros) and shapes with ragged tails (not
//! multiples of any tile), poisons each output with 0xFF bytes (NaN) before the run and
//! requires every element to be written, and compares by ‖out − ref‖ / ‖ref‖ against a
//! reference computed by the CPU ops in f64: 1e-5 for f32 kernels, 1e-2 for bf16/f16
//! inputs (plus a tight check against the reference on the rounded inputs). On the
//! emulator each case runs under both thread schedules (ascending and descending) and
//! the outputs must be bit-identical, which catches missing barriers.

mod common;

use common::gpu::{
    check, down, on_devices, poisoned, randn, round_half, t64, uniform, widen, Agree, TOL_F32,
    TOL_HALF,
};
use half::bf16;
use sparsevlp::gpu::dense::attention::{self as gattn, AttentionShape};
use sparsevlp::gpu::dense::gemm::{self as ggemm, Gemm};
use sparsevlp::gpu::dense::{adamw as gadamw, bias_gelu as gbg, embedding as gemb};
use sparsevlp::gpu::dense::{layernorm as gln, loss as gloss, softmax as gsm, HalfType};
use sparsevlp::gpu::GpuContext;
use sparsevlp::ops;
use sparsevlp::ops::attention::AttentionDropout;
use sparsevlp::{Device, Tensor};

// ---------------------------------------------------------------------------------------
// GEMM
// ---------------------------------------------------------------------------------------

/// Stores a logical rows×cols matrix with leading dimension `ld` (padding filled with
/// huge values, which a correct kernel never reads into the result).
fn pad_rows(data: &[f32], rows: usize, cols: usize, ld: usize) -> Vec<f32> {
    let mut out = vec![1e30f32; rows.saturating_sub(1) * ld + cols];
    for r in 0..rows {
        out[r * ld..r * ld + cols].copy_from_slice(&data[r * cols..(r + 1) * cols]);
    }
    out
}

/// The f64 reference of a (batched) GEMM case via ops::matmul, with alpha and C0.
fn gemm_reference(g: &Gemm, a: &[f32], b: &[f32], c0: Option<&[f32]>) -> Vec<f64> {
    let (ra, ca) = if g.ta { (g.k, g.m) } else { (g.m, g.k) };
    let (rb, cb) = if g.tb { (g.n, g.k) } else { (g.k, g.n) };
    let at = t64(a, &[g.batch, ra, ca]);
    let bt = t64(b, &[g.batch, rb, cb]);
    let prod = ops::matmul::matmul(&at, &bt, g.ta, g.tb)
        .unwrap()
        .to_vec_f64();
    prod.iter()
        .enumerate()
        .map(|(i, &p)| g.alpha as f64 * p + c0.map_or(0.0, |c| c[i] as f64))
        .collect()
}

/// A GEMM case: A, B batches (contiguous, as stored), optional accumulation input.
struct GemmCase {
    g: Gemm,
    a: Vec<f32>,
    b: Vec<f32>,
    c0: Option<Vec<f32>>,
}

impl GemmCase {
    fn new(m: usize, n: usize, k: usize, batch: usize, ta: bool, tb: bool, seed: u64) -> Self {
        let g = Gemm::new(m, n, k).transposed(ta, tb).batched(batch);
        GemmCase {
            g,
            a: randn(batch * m * k, 1.0, seed),
            b: randn(batch * k * n, 1.0, seed + 1),
            c0: None,
        }
    }

    fn name(&self) -> String {
        let g = &self.g;
        format!(
            "{}x{}x{} batch {} ta {} tb {} lda {} ldb {} alpha {} acc {}",
            g.m, g.n, g.k, g.batch, g.ta, g.tb, g.lda, g.ldb, g.alpha, g.accumulate
        )
    }
}

const GEMM_SHAPES: &[(usize, usize, usize, usize)] = &[
    (33, 47, 19, 1), // ragged everywhere, leading dims not multiples of 4 (scalar loads)
    (64, 64, 64, 1), // aligned, vector loads
    (36, 44, 20, 1), // vector loads with ragged tiles
    (130, 129, 33, 1), // several blocks
    (5, 7, 3, 3),    // strided batch
    (1, 1, 1, 1),
];

#[test]
fn gemm_f32_matches_cpu() {
    let mut seed = 100;
    for &(m, n, k, batch) in GEMM_SHAPES {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            seed += 10;
            let case = GemmCase::new(m, n, k, batch, ta, tb, seed);
            let reference = gemm_reference(&case.g, &case.a, &case.b, None);
            let name = format!("gemm_f32 {}", case.name());
            for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
                let (a, b) = (ctx.upload(&case.a)?, ctx.upload(&case.b)?);
                let mut c = poisoned(ctx, batch * m * n)?;
                ggemm::gemm_f32(ctx, &case.g, &a, &b, &mut c)?;
                Ok(vec![down(ctx, &c)?])
            }) {
                check(&name, dev, &out[0], &reference, TOL_F32);
            }
        }
    }
}

#[test]
fn gemm_f32_alpha_accumulate_and_padded_leading_dims() {
    // C = 0.5·op(A)·op(B) + C0 with padded (unaligned) leading dimensions of A and B.
    for (i, &(ta, tb)) in [(false, true), (true, false)].iter().enumerate() {
        let (m, n, k) = (21, 34, 27);
        let mut case = GemmCase::new(m, n, k, 1, ta, tb, 500 + i as u64);
        let (ra, ca) = if ta { (k, m) } else { (m, k) };
        let (rb, cb) = if tb { (n, k) } else { (k, n) };
        case.g = case.g.alpha(0.5).accumulate(true);
        case.g.lda = ca + 3;
        case.g.ldb = cb + 5;
        case.c0 = Some(randn(m * n, 1.0, 600 + i as u64));
        let reference = gemm_reference(&case.g, &case.a, &case.b, case.c0.as_deref());
        let (pa, pb) = (
            pad_rows(&case.a, ra, ca, case.g.lda),
            pad_rows(&case.b, rb, cb, case.g.ldb),
        );
        let name = format!("gemm_f32 {}", case.name());
        for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
            let (a, b) = (ctx.upload(&pa)?, ctx.upload(&pb)?);
            let mut c = ctx.upload(case.c0.as_ref().unwrap())?;
            ggemm::gemm_f32(ctx, &case.g, &a, &b, &mut c)?;
            Ok(vec![down(ctx, &c)?])
        }) {
            check(&name, dev, &out[0], &reference, TOL_F32);
        }
    }
}

#[test]
fn gemm_tc_matches_cpu() {
    let shapes: &[(usize, usize, usize, usize)] = &[
        (33, 47, 19, 1),   // ragged, scalar loads
        (64, 64, 64, 1),   // aligned, 16-byte loads
        (40, 24, 40, 1),   // 16-byte loads, ragged tiles
        (17, 9, 21, 2),    // strided batch
        (130, 140, 72, 1), // several blocks and K slices
    ];
    let mut seed = 1000;
    for dtype in [HalfType::Bf16, HalfType::F16] {
        for &(m, n, k, batch) in shapes {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                seed += 10;
                let case = GemmCase::new(m, n, k, batch, ta, tb, seed);
                let (a_bits, a_r) = round_half(&case.a, dtype);
                let (b_bits, b_r) = round_half(&case.b, dtype);
                let exact = gemm_reference(&case.g, &case.a, &case.b, None);
                let rounded = gemm_reference(&case.g, &a_r, &b_r, None);
                let name = format!("gemm_tc {dtype:?} {}", case.name());
                for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
                    let (a, b) = (ctx.upload(&a_bits)?, ctx.upload(&b_bits)?);
                    let mut c = poisoned(ctx, batch * m * n)?;
                    ggemm::gemm_tc(ctx, dtype, &case.g, &a, &b, &mut c)?;
                    Ok(vec![down(ctx, &c)?])
                }) {
                    check(&name, dev, &out[0], &exact, TOL_HALF);
                    // Against the product of the rounded inputs only the f32
                    // accumulation order differs.
                    check(
                        &format!("{name} (rounded inputs)"),
                        dev,
                        &out[0],
                        &rounded,
                        1e-5,
                    );
                }
            }
        }
    }
}

#[test]
fn gemm_launchers_refuse_bad_sizes() {
    let ctx = GpuContext::get(Device::Emu).unwrap();
    let a = ctx.upload(&[1f32; 12]).unwrap();
    let b = ctx.upload(&[1f32; 12]).unwrap();
    let mut small = ctx.alloc_bytes(4 * 8).unwrap();
    // C needs 3·4 = 12 elements.
    assert!(ggemm::gemm_f32(ctx, &Gemm::new(3, 4, 3), &a, &b, &mut small).is_err());
    // A needs 5·3 elements.
    let mut c = ctx.alloc_bytes(4 * 20).unwrap();
    assert!(ggemm::gemm_f32(ctx, &Gemm::new(5, 4, 3), &a, &b, &mut c).is_err());
    // Leading dimension below the row length.
    let mut g = Gemm::new(3, 4, 3);
    g.lda = 2;
    assert!(ggemm::gemm_f32(ctx, &g, &a, &b, &mut c).is_err());
    let shape = AttentionShape {
        batch: 1,
        heads: 1,
        tq: 1,
        tk: 1,
        head_dim: 129,
    };
    let big = ctx.alloc_bytes(4 * 1024).unwrap();
    let (mut o, mut l) = (
        ctx.alloc_bytes(4 * 1024).unwrap(),
        ctx.alloc_bytes(64).unwrap(),
    );
    assert!(
        gattn::attention_forward(ctx, &shape, &big, &big, &big, None, None, &mut o, &mut l)
            .is_err()
    );
}

// ---------------------------------------------------------------------------------------
// Bias + GELU
// ---------------------------------------------------------------------------------------

const ROW_SHAPES: &[(usize, usize)] = &[(33, 47), (8, 64), (1, 5), (70, 3), (300, 36)];

#[test]
fn bias_gelu_forward_matches_cpu() {
    for (i, &(rows, n)) in ROW_SHAPES.iter().enumerate() {
        let seed = 2000 + 10 * i as u64;
        let x = randn(rows * n, 1.5, seed);
        let bias = randn(n, 0.5, seed + 1);
        let h_ref = ops::elementwise::bias_add(&t64(&x, &[rows, n]), &t64(&bias, &[n])).unwrap();
        let y_ref = ops::elementwise::gelu(&h_ref).unwrap();
        let (h_ref, y_ref) = (h_ref.to_vec_f64(), y_ref.to_vec_f64());
        let name = format!("bias_gelu_forward {rows}x{n}");
        for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
            let (xb, bb) = (ctx.upload(&x)?, ctx.upload(&bias)?);
            let (mut h, mut y) = (poisoned(ctx, rows * n)?, poisoned(ctx, rows * n)?);
            gbg::bias_gelu_forward(ctx, &xb, &bb, &mut h, &mut y, rows, n)?;
            let mut plain = poisoned(ctx, rows * n)?;
            gbg::bias_add(ctx, &xb, &bb, &mut plain, rows, n)?;
            let mut g = poisoned(ctx, rows * n)?;
            gbg::gelu_forward(ctx, &h, &mut g, rows * n)?;
            Ok(vec![
                down(ctx, &h)?,
                down(ctx, &y)?,
                down(ctx, &plain)?,
                down(ctx, &g)?,
            ])
        }) {
            check(&format!("{name} (h)"), dev, &out[0], &h_ref, TOL_F32);
            check(&format!("{name} (y)"), dev, &out[1], &y_ref, TOL_F32);
            check(&format!("{name} (bias_add)"), dev, &out[2], &h_ref, TOL_F32);
            check(&format!("{name} (gelu)"), dev, &out[3], &y_ref, TOL_F32);
        }
    }
}

#[test]
fn bias_gelu_backward_matches_cpu() {
    for (i, &(rows, n)) in ROW_SHAPES.iter().enumerate() {
        let seed = 3000 + 10 * i as u64;
        let h = randn(rows * n, 1.5, seed);
        let dy = randn(rows * n, 1.0, seed + 1);
        let db0 = randn(n, 1.0, seed + 2);
        let dh_ref =
            ops::elementwise::gelu_backward(&t64(&h, &[rows, n]), &t64(&dy, &[rows, n])).unwrap();
        // The CPU op accumulates into dbias.
        let mut db_ref = t64(&db0, &[n]);
        ops::elementwise::bias_add_backward(&dh_ref, &mut db_ref).unwrap();
        let mut dysum_ref = t64(&db0, &[n]);
        ops::elementwise::bias_add_backward(&t64(&dy, &[rows, n]), &mut dysum_ref).unwrap();
        let db_only: Vec<f64> = db_ref
            .to_vec_f64()
            .iter()
            .zip(&db0)
            .map(|(a, &b)| a - b as f64)
            .collect();
        let name = format!("bias_gelu_backward {rows}x{n}");
        for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
            let (hb, dyb) = (ctx.upload(&h)?, ctx.upload(&dy)?);
            let mut dh = poisoned(ctx, rows * n)?;
            let mut db_acc = ctx.upload(&db0)?;
            gbg::bias_gelu_backward(ctx, &hb, &dyb, &mut dh, &mut db_acc, rows, n, true)?;
            let mut db_set = poisoned(ctx, n)?;
            gbg::bias_gelu_backward(ctx, &hb, &dyb, &mut dh, &mut db_set, rows, n, false)?;
            let mut dx = poisoned(ctx, rows * n)?;
            gbg::gelu_backward(ctx, &hb, &dyb, &mut dx, rows * n)?;
            let mut colsum = ctx.upload(&db0)?;
            gbg::column_sum(ctx, &dyb, &mut colsum, rows, n, true)?;
            Ok(vec![
                down(ctx, &dh)?,
                down(ctx, &db_acc)?,
                down(ctx, &db_set)?,
                down(ctx, &dx)?,
                down(ctx, &colsum)?,
            ])
        }) {
            let dh_ref = dh_ref.to_vec_f64();
            check(&format!("{name} (dh)"), dev, &out[0], &dh_ref, TOL_F32);
            check(
                &format!("{name} (dbias +=)"),
                dev,
                &out[1],
                &db_ref.to_vec_f64(),
                TOL_F32,
            );
            check(
                &format!("{name} (dbias =)"),
                dev,
                &out[2],
                &db_only,
                TOL_F32,
            );
            check(
                &format!("{name} (gelu_backward)"),
                dev,
                &out[3],
                &dh_ref,
                TOL_F32,
            );
            check(
                &format!("{name} (column_sum)"),
                dev,
                &out[4],
                &dysum_ref.to_vec_f64(),
                TOL_F32,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// LayerNorm
// ---------------------------------------------------------------------------------------

#[test]
fn layernorm_matches_cpu() {
    let eps = 1e-5;
    for (i, &(rows, n)) in ROW_SHAPES.iter().enumerate() {
        let seed = 4000 + 10 * i as u64;
        let x: Vec<f32> = randn(rows * n, 2.0, seed).iter().map(|v| v + 0.7).collect();
        let gamma = randn(n, 1.0, seed + 1);
        let beta = randn(n, 1.0, seed + 2);
        let dy = randn(rows * n, 1.0, seed + 3);
        let (dg0, db0) = (randn(n, 1.0, seed + 4), randn(n, 1.0, seed + 5));
        let xt = t64(&x, &[rows, n]);
        let (y_ref, saved) =
            ops::layernorm::layer_norm(&xt, &t64(&gamma, &[n]), &t64(&beta, &[n]), eps).unwrap();
        let (mut dg_ref, mut db_ref) = (t64(&dg0, &[n]), t64(&db0, &[n]));
        let dx_ref = ops::layernorm::layer_norm_backward(
            &xt,
            &t64(&gamma, &[n]),
            &saved,
            &t64(&dy, &[rows, n]),
            &mut dg_ref,
            &mut db_ref,
        )
        .unwrap();
        let name = format!("layernorm {rows}x{n}");
        for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
            let (xb, gb, bb, dyb) = (
                ctx.upload(&x)?,
                ctx.upload(&gamma)?,
                ctx.upload(&beta)?,
                ctx.upload(&dy)?,
            );
            let mut y = poisoned(ctx, rows * n)?;
            let (mut mean, mut rstd) = (poisoned(ctx, rows)?, poisoned(ctx, rows)?);
            gln::layernorm_forward(
                ctx, &xb, &gb, &bb, &mut y, &mut mean, &mut rstd, rows, n, eps as f32,
            )?;
            let mut dx = poisoned(ctx, rows * n)?;
            let (mut dg, mut db) = (ctx.upload(&dg0)?, ctx.upload(&db0)?);
            gln::layernorm_backward(
                ctx, &xb, &gb, &mean, &rstd, &dyb, &mut dx, &mut dg, &mut db, rows, n, true,
            )?;
            Ok(vec![
                down(ctx, &y)?,
                down(ctx, &mean)?,
                down(ctx, &rstd)?,
                down(ctx, &dx)?,
                down(ctx, &dg)?,
                down(ctx, &db)?,
            ])
        }) {
            check(
                &format!("{name} (y)"),
                dev,
                &out[0],
                &y_ref.to_vec_f64(),
                TOL_F32,
            );
            check(
                &format!("{name} (mean)"),
                dev,
                &out[1],
                &saved.mean.to_vec_f64(),
                TOL_F32,
            );
            check(
                &format!("{name} (rstd)"),
                dev,
                &out[2],
                &saved.rstd.to_vec_f64(),
                TOL_F32,
            );
            check(
                &format!("{name} (dx)"),
                dev,
                &out[3],
                &dx_ref.to_vec_f64(),
                TOL_F32,
            );
            check(
                &format!("{name} (dgamma)"),
                dev,
                &out[4],
                &dg_ref.to_vec_f64(),
                TOL_F32,
            );
            check(
                &format!("{name} (dbeta)"),
                dev,
                &out[5],
                &db_ref.to_vec_f64(),
                TOL_F32,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Softmax
// ---------------------------------------------------------------------------------------

#[test]
fn softmax_matches_cpu() {
    // (rows, n, mask rows g): g = 0 means no mask.
    let cases: &[(usize, usize, usize)] =
        &[(12, 47, 3), (33, 19, 0), (8, 64, 1), (6, 5, 6), (4, 300, 2)];
    for (i, &(rows, n, g)) in cases.iter().enumerate() {
        let seed = 5000 + 10 * i as u64;
        let x = randn(rows * n, 2.0, seed);
        let dy = randn(rows * n, 1.0, seed + 1);
        let mut mask = randn(g * n, 0.5, seed + 2);
        for (j, m) in mask.iter_mut().enumerate() {
            if j % 7 == 3 {
                *m = -1e9; // padded entries
            }
        }
        if g >= 2 {
            // The last mask row masks everything with −∞: its rows become zeros.
            for m in &mut mask[(g - 1) * n..] {
                *m = f32::NEG_INFINITY;
            }
        }
        let mask_t = (g > 0).then(|| t64(&mask, &[g, n]));
        let y_ref = ops::softmax::softmax(&t64(&x, &[rows, n]), mask_t.as_ref()).unwrap();
        let dx_ref = ops::softmax::softmax_backward(&y_ref, &t64(&dy, &[rows, n])).unwrap();
        let y_ref_f32: Vec<f32> = y_ref.to_vec_f64().iter().map(|&v| v as f32).collect();
        let name = format!("softmax {rows}x{n} mask rows {g}");
        for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
            let xb = ctx.upload(&x)?;
            let mb = ctx.upload(&mask)?;
            let mut y = poisoned(ctx, rows * n)?;
            gsm::softmax_forward(ctx, &xb, (g > 0).then_some((&mb, g)), &mut y, rows, n)?;
            let (yb, dyb) = (ctx.upload(&y_ref_f32)?, ctx.upload(&dy)?);
            let mut dx = poisoned(ctx, rows * n)?;
            gsm::softmax_backward(ctx, &yb, &dyb, &mut dx, rows, n)?;
            Ok(vec![down(ctx, &y)?, down(ctx, &dx)?])
        }) {
            check(
                &format!("{name} (y)"),
                dev,
                &out[0],
                &y_ref.to_vec_f64(),
                TOL_F32,
            );
            check(
                &format!("{name} (dx)"),
                dev,
                &out[1],
                &dx_ref.to_vec_f64(),
                TOL_F32,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------

/// An attention case: inputs, a key mask (0/random on valid keys, −1e9 on padded ones).
struct AttnCase {
    s: AttentionShape,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    mask: Option<Vec<f32>>,
}

impl AttnCase {
    fn new(b: usize, h: usize, tq: usize, tk: usize, d: usize, masked: bool, seed: u64) -> Self {
        let s = AttentionShape {
            batch: b,
            heads: h,
            tq,
            tk,
            head_dim: d,
        };
        let mask = masked.then(|| {
            let mut m = randn(b * tk, 0.3, seed + 3);
            for bi in 0..b {
                // Batch bi keeps tk − 3·bi keys (at least one).
                let valid = tk.saturating_sub(3 * bi).max(1);
                for t in valid..tk {
                    m[bi * tk + t] = -1e9;
                }
            }
            m
        });
        AttnCase {
            s,
            q: randn(b * tq * h * d, 1.0, seed),
            k: randn(b * tk * h * d, 1.0, seed + 1),
            v: randn(b * tk * h * d, 1.0, seed + 2),
            mask,
        }
    }

    fn name(&self) -> String {
        let s = &self.s;
        format!(
            "B {} H {} Tq {} Tk {} D {} mask {}",
            s.batch,
            s.heads,
            s.tq,
            s.tk,
            s.head_dim,
            self.mask.is_some()
        )
    }

    fn tensors(&self, q: &[f32], k: &[f32], v: &[f32]) -> (Tensor, Tensor, Tensor, Option<Tensor>) {
        let s = &self.s;
        let hd = s.heads * s.head_dim;
        (
            t64(q, &[s.batch, s.tq, hd]),
            t64(k, &[s.batch, s.tk, hd]),
            t64(v, &[s.batch, s.tk, hd]),
            self.mask.as_ref().map(|m| t64(m, &[s.batch, s.tk])),
        )
    }

    /// The log-sum-exp of every (batch, head, query) row, `[B, H, Tq]`, in f64.
    fn lse(&self, q: &[f32], k: &[f32]) -> Vec<f64> {
        let s = &self.s;
        let (hd, d) = (s.heads * s.head_dim, s.head_dim);
        let scale = 1.0 / (d as f64).sqrt();
        let mut out = Vec::new();
        for b in 0..s.batch {
            for h in 0..s.heads {
                for i in 0..s.tq {
                    let scores: Vec<f64> = (0..s.tk)
                        .map(|j| {
                            let dot: f64 = (0..d)
                                .map(|c| {
                                    q[(b * s.tq + i) * hd + h * d + c] as f64
                                        * k[(b * s.tk + j) * hd + h * d + c] as f64
                                })
                                .sum();
                            dot * scale + self.mask.as_ref().map_or(0.0, |m| m[b * s.tk + j] as f64)
                        })
                        .collect();
                    let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    out.push(mx + scores.iter().map(|x| (x - mx).exp()).sum::<f64>().ln());
                }
            }
        }
        out
    }
}

const ATTN_CASES: &[(usize, usize, usize, usize, usize, bool)] = &[
    (1, 1, 5, 7, 8, false),
    (2, 3, 33, 47, 16, true), // odd head count, padded keys, ragged tiles
    (1, 2, 70, 65, 64, true), // several query and key tiles
    (2, 1, 17, 40, 72, true), // D between 64 and 128 (d128 kernels, zero-padded)
    (1, 1, 20, 19, 128, false),
];

/// With and without dropout on the probabilities (the GPU kernels must draw the CPU's
/// mask: a different mask changes the outputs far beyond the tolerance).
#[test]
fn attention_f32_matches_cpu() {
    let dropouts = |i: usize| {
        [
            None,
            Some(AttentionDropout {
                p: 0.3,
                seed: 90 + i as u64,
            }),
        ]
    };
    for (i, &(b, h, tq, tk, d, masked)) in ATTN_CASES.iter().enumerate() {
        for dropout in dropouts(i) {
            let case = AttnCase::new(b, h, tq, tk, d, masked, 6000 + 10 * i as u64);
            let s = case.s;
            let (qt, kt, vt, mt) = case.tensors(&case.q, &case.k, &case.v);
            let (out_ref, saved) =
                ops::attention::attention(&qt, &kt, &vt, h, mt.as_ref(), dropout).unwrap();
            let dout = randn(b * tq * h * d, 1.0, 7000 + i as u64);
            let (dq_ref, dk_ref, dv_ref) = ops::attention::attention_backward(
                &qt,
                &kt,
                &vt,
                &saved,
                &t64(&dout, &[b, tq, h * d]),
            )
            .unwrap();
            let lse_ref = case.lse(&case.q, &case.k);
            let name = format!("attention f32 {} dropout {dropout:?}", case.name());
            for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
                let (q, k, v) = (
                    ctx.upload(&case.q)?,
                    ctx.upload(&case.k)?,
                    ctx.upload(&case.v)?,
                );
                let mask = case.mask.as_ref().map(|m| ctx.upload(m)).transpose()?;
                let mut o = poisoned(ctx, b * tq * h * d)?;
                let mut lse = poisoned(ctx, b * h * tq)?;
                gattn::attention_forward(
                    ctx,
                    &s,
                    &q,
                    &k,
                    &v,
                    mask.as_ref(),
                    dropout,
                    &mut o,
                    &mut lse,
                )?;
                let dob = ctx.upload(&dout)?;
                let mut dq = poisoned(ctx, b * tq * h * d)?;
                let (mut dk, mut dv) = (
                    poisoned(ctx, b * tk * h * d)?,
                    poisoned(ctx, b * tk * h * d)?,
                );
                gattn::attention_backward(
                    ctx,
                    &s,
                    &q,
                    &k,
                    &v,
                    mask.as_ref(),
                    dropout,
                    &o,
                    &dob,
                    &lse,
                    &mut dq,
                    &mut dk,
                    &mut dv,
                )?;
                Ok(vec![
                    down(ctx, &o)?,
                    down(ctx, &lse)?,
                    down(ctx, &dq)?,
                    down(ctx, &dk)?,
                    down(ctx, &dv)?,
                ])
            }) {
                let want = [
                    ("out", out_ref.to_vec_f64()),
                    ("lse", lse_ref.clone()),
                    ("dq", dq_ref.to_vec_f64()),
                    ("dk", dk_ref.to_vec_f64()),
                    ("dv", dv_ref.to_vec_f64()),
                ];
                assert_eq!(out.len(), want.len(), "{name}");
                for ((what, want), got) in want.iter().zip(&out) {
                    check(&format!("{name} ({what})"), dev, got, want, TOL_F32);
                }
            }
        }
    }
}

#[test]
fn attention_tc_forward_matches_cpu() {
    let cases: &[(usize, usize, usize, usize, usize, bool)] = &[
        (1, 2, 33, 47, 64, true), // ragged query and key tiles, padded keys
        (2, 1, 16, 32, 32, false),
        (1, 3, 20, 40, 96, true), // d128 kernel, D zero-padded, odd heads
        (1, 1, 9, 5, 20, false),  // D not a multiple of 8 (scalar loads)
    ];
    for dtype in [HalfType::Bf16, HalfType::F16] {
        for (i, &(b, h, tq, tk, d, masked)) in cases.iter().enumerate() {
            let case = AttnCase::new(b, h, tq, tk, d, masked, 8000 + 10 * i as u64);
            let s = case.s;
            let (q_bits, q_r) = round_half(&case.q, dtype);
            let (k_bits, k_r) = round_half(&case.k, dtype);
            let (v_bits, v_r) = round_half(&case.v, dtype);
            let (qt, kt, vt, mt) = case.tensors(&q_r, &k_r, &v_r);
            let (out_ref, _) =
                ops::attention::attention(&qt, &kt, &vt, h, mt.as_ref(), None).unwrap();
            let lse_ref = case.lse(&q_r, &k_r);
            let name = format!("attention tc {dtype:?} {}", case.name());
            for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
                let (q, k, v) = (
                    ctx.upload(&q_bits)?,
                    ctx.upload(&k_bits)?,
                    ctx.upload(&v_bits)?,
                );
                let mask = case.mask.as_ref().map(|m| ctx.upload(m)).transpose()?;
                let mut o = poisoned(ctx, b * tq * h * d)?;
                let mut lse = poisoned(ctx, b * h * tq)?;
                gattn::attention_forward_tc(
                    ctx,
                    dtype,
                    &s,
                    &q,
                    &k,
                    &v,
                    mask.as_ref(),
                    &mut o,
                    &mut lse,
                )?;
                Ok(vec![down(ctx, &o)?, down(ctx, &lse)?])
            }) {
                check(
                    &format!("{name} (out)"),
                    dev,
                    &out[0],
                    &out_ref.to_vec_f64(),
                    TOL_HALF,
                );
                // l sums the probabilities rounded to the 16-bit type P·V uses.
                check(&format!("{name} (lse)"), dev, &out[1], &lse_ref, 1e-3);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Embedding
// ---------------------------------------------------------------------------------------

#[test]
fn embedding_matches_cpu() {
    // (vocab, dim, ids): unique ids (deterministic even with atomics) and repeated ids.
    let cases: Vec<(usize, usize, Vec<u32>)> = vec![
        (11, 19, vec![3, 0, 10, 7, 5, 1]),
        (11, 32, (0..23).map(|i| (i * 7 % 11) as u32).collect()),
        (50, 5, vec![49]),
    ];
    for (i, (vocab, dim, ids)) in cases.into_iter().enumerate() {
        let count = ids.len();
        let seed = 9000 + 10 * i as u64;
        let table = randn(vocab * dim, 1.0, seed);
        let dy = randn(count * dim, 1.0, seed + 1);
        let dt0 = randn(vocab * dim, 1.0, seed + 2);
        let tt = t64(&table, &[vocab, dim]);
        let out_ref = ops::embedding::embedding(&tt, &ids).unwrap().to_vec_f64();
        let mut dt_ref = t64(&dt0, &[vocab, dim]);
        ops::embedding::embedding_backward(&ids, &t64(&dy, &[count, dim]), &mut dt_ref).unwrap();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let agree = if sorted.len() == ids.len() {
            Agree::Exactly
        } else {
            Agree::Within(1e-6)
        };
        gemb::check_ids(&ids, vocab).unwrap();
        assert!(gemb::check_ids(&[vocab as u32], vocab).is_err());
        let name = format!("embedding vocab {vocab} dim {dim} ids {count}");
        for (dev, out) in on_devices(&name, agree, |ctx| {
            let (tb, idb, dyb) = (ctx.upload(&table)?, ctx.upload(&ids)?, ctx.upload(&dy)?);
            let mut o = poisoned(ctx, count * dim)?;
            gemb::embedding_forward(ctx, &tb, &idb, &mut o, count, dim, vocab)?;
            let mut dt = ctx.upload(&dt0)?;
            gemb::embedding_backward(ctx, &idb, &dyb, &mut dt, count, dim, vocab)?;
            Ok(vec![down(ctx, &o)?, down(ctx, &dt)?])
        }) {
            assert_eq!(
                widen(&out[0]),
                out_ref,
                "{name} (forward) on {dev}: a gather is exact"
            );
            check(
                &format!("{name} (backward)"),
                dev,
                &out[1],
                &dt_ref.to_vec_f64(),
                TOL_F32,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------

#[test]
fn losses_match_cpu() {
    for (i, &(batch, classes)) in [(5usize, 37usize), (1, 300), (7, 19), (3, 1000)]
        .iter()
        .enumerate()
    {
        let seed = 10_000 + 10 * i as u64;
        let x = randn(batch * classes, 3.0, seed);
        let t = uniform(batch * classes, 0.0, 1.0, seed + 1);
        let dloss = randn(batch, 1.0, seed + 2);
        let cls: Vec<u32> = (0..batch)
            .map(|b| ((b * 13 + 5) % classes) as u32)
            .collect();
        let cls_usize: Vec<usize> = cls.iter().map(|&c| c as usize).collect();
        let (xt, tt, dt) = (
            t64(&x, &[batch, classes]),
            t64(&t, &[batch, classes]),
            t64(&dloss, &[batch]),
        );
        let bce_ref = ops::loss::bce_with_logits(&xt, &tt).unwrap().to_vec_f64();
        let dbce_ref = ops::loss::bce_with_logits_backward(&xt, &tt, &dt)
            .unwrap()
            .to_vec_f64();
        let ce_ref = ops::loss::cross_entropy(&xt, &cls_usize)
            .unwrap()
            .to_vec_f64();
        let dce_ref = ops::loss::cross_entropy_backward(&xt, &cls_usize, &dt)
            .unwrap()
            .to_vec_f64();
        gloss::check_classes(&cls, classes).unwrap();
        let name = format!("losses {batch}x{classes}");
        for (dev, out) in on_devices(&name, Agree::Exactly, |ctx| {
            let (xb, tb, db, cb) = (
                ctx.upload(&x)?,
                ctx.upload(&t)?,
                ctx.upload(&dloss)?,
                ctx.upload(&cls)?,
            );
            let mut l = poisoned(ctx, batch)?;
            gloss::bce_forward(ctx, &xb, &tb, &mut l, batch, classes)?;
            let mut dl = poisoned(ctx, batch * classes)?;
            gloss::bce_backward(ctx, &xb, &tb, &db, &mut dl, batch, classes)?;
            let mut ce = poisoned(ctx, batch)?;
            gloss::ce_forward(ctx, &xb, &cb, &mut ce, batch, classes)?;
            let mut dce = poisoned(ctx, batch * classes)?;
            gloss::ce_backward(ctx, &xb, &cb, &db, &mut dce, batch, classes)?;
            Ok(vec![
                down(ctx, &l)?,
                down(ctx, &dl)?,
                down(ctx, &ce)?,
                down(ctx, &dce)?,
            ])
        }) {
            check(&format!("{name} (bce)"), dev, &out[0], &bce_ref, TOL_F32);
            check(
                &format!("{name} (bce backward)"),
                dev,
                &out[1],
                &dbce_ref,
                TOL_F32,
            );
            check(&format!("{name} (ce)"), dev, &out[2], &ce_ref, TOL_F32);
            check(
                &format!("{name} (ce backward)"),
                dev,
                &out[3],
                &dce_ref,
                TOL_F32,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------

#[test]
fn adamw_matches_cpu_bit_for_bit() {
    let count = 1037;
    let cfg = ops::adamw::AdamWConfig {
        lr: 3e-3,
        weight_decay: 0.05,
        ..Default::default()
    };
    let p0 = randn(count, 1.0, 11_000);
    let grads: Vec<Vec<f32>> = (0..3).map(|s| randn(count, 0.5, 11_001 + s)).collect();
    // CPU: three steps in f32.
    let mut p = Tensor::from_vec(p0.clone(), [count]).unwrap();
    let mut m = Tensor::from_vec(vec![0f32; count], [count]).unwrap();
    let mut v = Tensor::from_vec(vec![0f32; count], [count]).unwrap();
    for (s, g) in grads.iter().enumerate() {
        let gt = Tensor::from_vec(g.clone(), [count]).unwrap();
        ops::adamw::adamw_step(&mut p, &gt, &mut m, &mut v, &cfg, s as u64 + 1).unwrap();
    }
    let (p_ref, m_ref, v_ref) = (p.to_vec_f32(), m.to_vec_f32(), v.to_vec_f32());
    for (dev, out) in on_devices("adamw", Agree::Exactly, |ctx| {
        let mut pb = ctx.upload(&p0)?;
        let (mut mb, mut vb) = (ctx.alloc_bytes(count * 4)?, ctx.alloc_bytes(count * 4)?);
        let mut p16 = ctx.alloc_bytes(count * 2)?;
        ctx.fill_bytes(&mut p16, 0xFF)?;
        for (s, g) in grads.iter().enumerate() {
            let gb = ctx.upload(g)?;
            let copy = (s == grads.len() - 1).then_some(&mut p16);
            gadamw::adamw_step(
                ctx,
                &mut pb,
                &gb,
                &mut mb,
                &mut vb,
                copy,
                count,
                &cfg,
                s as u64 + 1,
            )?;
        }
        let bits: Vec<f32> = ctx
            .download::<u16>(&p16)?
            .iter()
            .map(|&b| bf16::from_bits(b).to_f32())
            .collect();
        Ok(vec![
            down(ctx, &pb)?,
            down(ctx, &mb)?,
            down(ctx, &vb)?,
            bits,
        ])
    }) {
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same(&out[0], &p_ref),
            "adamw on {dev}: weights differ from the CPU op"
        );
        assert!(
            same(&out[1], &m_ref),
            "adamw on {dev}: m differs from the CPU op"
        );
        assert!(
            same(&out[2], &v_ref),
            "adamw on {dev}: v differs from the CPU op"
        );
        let p16_ref: Vec<f32> = p_ref.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
        assert!(same(&out[3], &p16_ref), "adamw on {dev}: bf16 copy differs");
    }
}
