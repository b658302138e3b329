//! Gradient checks (central differences in f64), f32-vs-f64 agreement and error tests for
//! the element-wise ops, layer norm, softmax, dropout and embedding.

use sparsevlp::gradcheck::{check_gradient, dot, GradCheckConfig};
use sparsevlp::ops::dropout::{dropout, dropout_backward};
use sparsevlp::ops::elementwise::{
    add, add_assign, bias_add, bias_add_backward, gelu, gelu_backward, relu, relu_backward, scale,
    sigmoid, sigmoid_backward, tanh, tanh_backward,
};
use sparsevlp::ops::embedding::{embedding, embedding_backward};
use sparsevlp::ops::layernorm::{layer_norm, layer_norm_backward, LayerNormSaved};
use sparsevlp::ops::softmax::{softmax, softmax_backward};
use sparsevlp::{DType, Error, Tensor};

/// Shapes covering a single element, a single row, odd sizes, rank 3, and rows longer
/// than one SIMD lane block (16) with and without a remainder.
const SHAPES: &[&[usize]] = &[&[1, 1], &[1, 5], &[3, 7], &[2, 3, 13], &[2, 16], &[3, 37]];

const LN_EPS: f64 = 1e-5;

/// A forward activation.
type Unary = fn(&Tensor) -> sparsevlp::Result<Tensor>;
/// An activation backward: `(saved input or output, dy) -> dx`.
type Binary = fn(&Tensor, &Tensor) -> sparsevlp::Result<Tensor>;

fn randn(dims: &[usize], std: f64, seed: u64) -> Tensor {
    Tensor::randn(dims, std, seed, DType::F64)
}

/// A tensor with the shape of `like` holding `data`.
fn like(like: &Tensor, data: &[f64]) -> Tensor {
    Tensor::from_vec(data.to_vec(), like.shape().clone()).unwrap()
}

fn zeros(dims: &[usize], dtype: DType) -> Tensor {
    Tensor::zeros(dims, dtype)
}

/// Checks `analytic` = ∂/∂x dot(f(x), r) by central differences at `x`.
fn grad_check(
    name: &str,
    x: &Tensor,
    analytic: &Tensor,
    r: &Tensor,
    mut f: impl FnMut(&Tensor) -> Tensor,
) {
    assert_eq!(analytic.dims(), x.dims(), "{name}: gradient shape");
    let rv = r.to_vec_f64();
    let loss = |p: &[f64]| dot(&f(&like(x, p)).to_vec_f64(), &rv);
    check_gradient(
        name,
        &x.to_vec_f64(),
        &analytic.to_vec_f64(),
        loss,
        GradCheckConfig::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Gradient check of a unary activation whose backward is `backward(saved, dy)`, where
/// `saved` is the forward input (`from_output = false`) or output.
fn check_activation(name: &str, forward: Unary, backward: Binary, from_output: bool) {
    for (k, dims) in SHAPES.iter().enumerate() {
        let seed = 100 + k as u64;
        let x = randn(dims, 1.5, seed);
        let r = randn(dims, 1.0, seed + 1000);
        let y = forward(&x).unwrap();
        let saved = if from_output { &y } else { &x };
        let analytic = backward(saved, &r).unwrap();
        grad_check(&format!("{name} {dims:?}"), &x, &analytic, &r, |x| {
            forward(x).unwrap()
        });
    }
}

#[test]
fn gelu_gradient_matches_finite_differences() {
    check_activation("gelu", gelu, gelu_backward, false);
}

#[test]
fn relu_gradient_matches_finite_differences() {
    check_activation("relu", relu, relu_backward, false);
}

#[test]
fn tanh_gradient_matches_finite_differences() {
    check_activation("tanh", tanh, tanh_backward, true);
}

#[test]
fn sigmoid_gradient_matches_finite_differences() {
    check_activation("sigmoid", sigmoid, sigmoid_backward, true);
}

#[test]
fn bias_add_gradients_match_finite_differences() {
    for (k, dims) in SHAPES.iter().enumerate() {
        let seed = 200 + k as u64;
        let n = *dims.last().unwrap();
        let x = randn(dims, 1.0, seed);
        let bias = randn(&[n], 1.0, seed + 1);
        let r = randn(dims, 1.0, seed + 2);
        // dx = dy.
        grad_check(&format!("bias_add dx {dims:?}"), &x, &r, &r, |x| {
            bias_add(x, &bias).unwrap()
        });
        let mut dbias = zeros(&[n], DType::F64);
        bias_add_backward(&r, &mut dbias).unwrap();
        grad_check(
            &format!("bias_add dbias {dims:?}"),
            &bias,
            &dbias,
            &r,
            |b| bias_add(&x, b).unwrap(),
        );
    }
}

#[test]
fn bias_add_backward_accumulates() {
    // 300 rows × 200: large enough for the parallel, chunked reduction.
    let dy = randn(&[300, 200], 1.0, 1);
    let mut once = zeros(&[200], DType::F64);
    bias_add_backward(&dy, &mut once).unwrap();
    let dyv = dy.to_vec_f64();
    let reference: Vec<f64> = (0..200)
        .map(|j| (0..300).map(|i| dyv[i * 200 + j]).sum())
        .collect();
    for (a, b) in once.to_vec_f64().iter().zip(&reference) {
        assert!((a - b).abs() < 1e-10, "{a} vs {b}");
    }
    let mut twice = once.clone();
    bias_add_backward(&dy, &mut twice).unwrap();
    for (a, b) in twice.to_vec_f64().iter().zip(once.to_vec_f64()) {
        assert!((a - 2.0 * b).abs() < 1e-10, "{a} vs 2 × {b}");
    }
}

/// Layer-norm inputs: x with a non-zero mean, and a non-trivial affine.
fn ln_inputs(dims: &[usize], seed: u64) -> (Tensor, Tensor, Tensor) {
    let n = *dims.last().unwrap();
    let x = add(
        &randn(dims, 2.0, seed),
        &Tensor::full(dims, 0.7, DType::F64),
    )
    .unwrap();
    let gamma = add(
        &randn(&[n], 0.5, seed + 1),
        &Tensor::full([n], 1.0, DType::F64),
    )
    .unwrap();
    let beta = randn(&[n], 0.5, seed + 2);
    (x, gamma, beta)
}

#[test]
fn layer_norm_gradients_match_finite_differences() {
    for (k, dims) in SHAPES.iter().enumerate() {
        let seed = 300 + 10 * k as u64;
        let n = *dims.last().unwrap();
        let (x, gamma, beta) = ln_inputs(dims, seed);
        let r = randn(dims, 1.0, seed + 3);
        let (_, saved) = layer_norm(&x, &gamma, &beta, LN_EPS).unwrap();
        let mut dgamma = zeros(&[n], DType::F64);
        let mut dbeta = zeros(&[n], DType::F64);
        let dx = layer_norm_backward(&x, &gamma, &saved, &r, &mut dgamma, &mut dbeta).unwrap();
        grad_check(&format!("layer_norm dx {dims:?}"), &x, &dx, &r, |x| {
            layer_norm(x, &gamma, &beta, LN_EPS).unwrap().0
        });
        grad_check(
            &format!("layer_norm dgamma {dims:?}"),
            &gamma,
            &dgamma,
            &r,
            |g| layer_norm(&x, g, &beta, LN_EPS).unwrap().0,
        );
        grad_check(
            &format!("layer_norm dbeta {dims:?}"),
            &beta,
            &dbeta,
            &r,
            |b| layer_norm(&x, &gamma, b, LN_EPS).unwrap().0,
        );
    }
}

#[test]
fn layer_norm_forward_matches_reference_and_backward_accumulates() {
    // 200 rows × 300: the parallel paths of the forward and of the dgamma/dbeta reduction.
    let dims = [200, 300];
    let (x, gamma, beta) = ln_inputs(&dims, 7);
    let (y, saved) = layer_norm(&x, &gamma, &beta, LN_EPS).unwrap();
    assert_eq!(saved.mean.dims(), [200]);
    assert_eq!(saved.rstd.dims(), [200]);
    let (xv, yv, g, b) = (
        x.to_vec_f64(),
        y.to_vec_f64(),
        gamma.to_vec_f64(),
        beta.to_vec_f64(),
    );
    for r in 0..200 {
        let row = &xv[r * 300..(r + 1) * 300];
        let mean = row.iter().sum::<f64>() / 300.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 300.0;
        let rstd = 1.0 / (var + LN_EPS).sqrt();
        assert!((saved.mean.to_vec_f64()[r] - mean).abs() < 1e-12);
        assert!((saved.rstd.to_vec_f64()[r] - rstd).abs() < 1e-12);
        for j in 0..300 {
            let want = (row[j] - mean) * rstd * g[j] + b[j];
            assert!((yv[r * 300 + j] - want).abs() < 1e-12);
        }
    }
    let dy = randn(&dims, 1.0, 8);
    let mut dgamma = zeros(&[300], DType::F64);
    let mut dbeta = zeros(&[300], DType::F64);
    layer_norm_backward(&x, &gamma, &saved, &dy, &mut dgamma, &mut dbeta).unwrap();
    let (g1, b1) = (dgamma.to_vec_f64(), dbeta.to_vec_f64());
    layer_norm_backward(&x, &gamma, &saved, &dy, &mut dgamma, &mut dbeta).unwrap();
    for (two, one) in dgamma.to_vec_f64().iter().zip(&g1) {
        assert!((two - 2.0 * one).abs() < 1e-10);
    }
    for (two, one) in dbeta.to_vec_f64().iter().zip(&b1) {
        assert!((two - 2.0 * one).abs() < 1e-10);
    }
}

#[test]
fn softmax_gradient_matches_finite_differences() {
    for (k, dims) in SHAPES.iter().enumerate() {
        let seed = 400 + k as u64;
        let x = randn(dims, 2.0, seed);
        let r = randn(dims, 1.0, seed + 1);
        let y = softmax(&x, None).unwrap();
        let dx = softmax_backward(&y, &r).unwrap();
        grad_check(&format!("softmax {dims:?}"), &x, &dx, &r, |x| {
            softmax(x, None).unwrap()
        });
    }
}

/// A `[g, n]` additive mask: 0 where kept, −1e9 where `masked(row, col)`.
fn mask(g: usize, n: usize, masked: impl Fn(usize, usize) -> bool) -> Tensor {
    let data = (0..g * n)
        .map(|i| if masked(i / n, i % n) { -1e9 } else { 0.0 })
        .collect::<Vec<f64>>();
    Tensor::from_vec(data, [g, n]).unwrap()
}

#[test]
fn masked_softmax_gradient_matches_finite_differences() {
    // Scores [B, H, Tq, Tk] = [2, 3, 4, 5]: a key-padding mask [B, Tk] (batch 0 keeps 4
    // keys, batch 1 keeps 2), and a per-(B, H) mask [6, Tk] masking a key in each group.
    let dims = [2, 3, 4, 5];
    let padding = mask(2, 5, |b, k| k >= [4, 2][b]);
    let per_head = mask(6, 5, |g, k| k == g % 5);
    for (name, m) in [("key padding", &padding), ("per head", &per_head)] {
        let x = randn(&dims, 2.0, 500);
        let r = randn(&dims, 1.0, 501);
        let y = softmax(&x, Some(m)).unwrap();
        let dx = softmax_backward(&y, &r).unwrap();
        grad_check(&format!("masked softmax ({name})"), &x, &dx, &r, |x| {
            softmax(x, Some(m)).unwrap()
        });
    }
}

#[test]
fn masked_softmax_broadcasts_mask_rows_over_groups() {
    let dims = [2, 3, 4, 5];
    let rows = 24;
    let x = randn(&dims, 2.0, 510);
    for g in [1, 2, 6, 24] {
        let m = mask(g, 5, |i, k| (i + k) % 3 == 0);
        let y = softmax(&x, Some(&m)).unwrap().to_vec_f64();
        let (xv, mv) = (x.to_vec_f64(), m.to_vec_f64());
        for r in 0..rows {
            let mrow = r / (rows / g);
            let z: Vec<f64> = (0..5).map(|k| xv[r * 5 + k] + mv[mrow * 5 + k]).collect();
            let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
            for k in 0..5 {
                let want = (z[k] - max).exp() / sum;
                assert!((y[r * 5 + k] - want).abs() < 1e-12, "g {g} row {r} col {k}");
                if mv[mrow * 5 + k] < 0.0 {
                    assert!(y[r * 5 + k] < 1e-300, "masked entry g {g} row {r} col {k}");
                }
            }
        }
    }
}

#[test]
fn softmax_is_stable_and_never_nan() {
    for dtype in [DType::F32, DType::F64] {
        // Huge logits: stable only if the row maximum is subtracted.
        let x = Tensor::from_vec(vec![1000.0, 999.0, 998.0, -1000.0], [1, 4])
            .unwrap()
            .to_dtype(dtype);
        let y = softmax(&x, None).unwrap().to_vec_f64();
        let e = [1.0, (-1.0f64).exp(), (-2.0f64).exp()];
        let s: f64 = e.iter().sum();
        for k in 0..3 {
            assert!((y[k] - e[k] / s).abs() < 1e-6, "{dtype}: {y:?}");
        }
        assert!(y[3] < 1e-30);

        // A row whose every key is masked with −1e9 stays a finite distribution.
        let x = randn(&[2, 3, 6], 1.0, 520).to_dtype(dtype);
        let m = mask(2, 6, |b, _| b == 1);
        let y = softmax(&x, Some(&m.to_dtype(dtype))).unwrap().to_vec_f64();
        assert!(y.iter().all(|v| v.is_finite()), "{dtype}: {y:?}");
        for row in y.chunks(6) {
            assert!(
                (row.iter().sum::<f64>() - 1.0).abs() < 1e-5,
                "{dtype}: {row:?}"
            );
        }

        // A row of −∞ gives zeros, not NaN; its backward is zero too.
        let x = Tensor::from_vec(vec![f64::NEG_INFINITY; 4], [1, 4])
            .unwrap()
            .to_dtype(dtype);
        let y = softmax(&x, None).unwrap();
        assert_eq!(y.to_vec_f64(), vec![0.0; 4], "{dtype}");
        let dx = softmax_backward(&y, &Tensor::full([1, 4], 1.0, dtype)).unwrap();
        assert_eq!(dx.to_vec_f64(), vec![0.0; 4], "{dtype}");
    }
}

#[test]
fn dropout_gradient_matches_finite_differences() {
    for (k, dims) in SHAPES.iter().enumerate() {
        let seed = 600 + k as u64;
        let x = randn(dims, 1.0, seed);
        let r = randn(dims, 1.0, seed + 1);
        let dx = dropout_backward(&r, 0.3, seed).unwrap();
        grad_check(&format!("dropout {dims:?}"), &x, &dx, &r, |x| {
            dropout(x, 0.3, seed).unwrap()
        });
    }
}

#[test]
fn dropout_drops_about_p_and_is_deterministic() {
    let n = 200_000;
    let p = 0.3;
    let x = Tensor::uniform([n], 1.0, 2.0, 3, DType::F64);
    let y = dropout(&x, p, 42).unwrap();
    let (xv, yv) = (x.to_vec_f64(), y.to_vec_f64());
    let dropped = yv.iter().filter(|&&v| v == 0.0).count();
    let frac = dropped as f64 / n as f64;
    assert!((frac - p).abs() < 0.005, "dropped fraction {frac}");
    for (a, b) in xv.iter().zip(&yv) {
        assert!(*b == 0.0 || (b - a / (1.0 - p)).abs() < 1e-12, "{a} → {b}");
    }
    // Same seed, same mask (also in f32, and in the backward); another seed, another mask.
    assert_eq!(dropout(&x, p, 42).unwrap(), y);
    let y32 = dropout(&x.to_dtype(DType::F32), p, 42)
        .unwrap()
        .to_vec_f64();
    assert!(yv.iter().zip(&y32).all(|(a, b)| (*a == 0.0) == (*b == 0.0)));
    assert_eq!(dropout_backward(&x, p, 42).unwrap(), y);
    assert_ne!(dropout(&x, p, 43).unwrap(), y);
    // p = 0 is the identity.
    assert_eq!(dropout(&x, 0.0, 42).unwrap(), x);
}

#[test]
fn embedding_gradient_matches_finite_differences() {
    let cases: [(&[u32], usize, usize); 4] = [
        (&[3, 1, 3, 0, 3], 5, 7),
        (&[2], 4, 1),
        (&[0, 0, 0], 1, 3),
        (&[6, 2, 9, 2, 6, 6, 0, 9], 10, 33),
    ];
    for (k, (ids, vocab, dim)) in cases.into_iter().enumerate() {
        let seed = 700 + k as u64;
        let table = randn(&[vocab, dim], 1.0, seed);
        let r = randn(&[ids.len(), dim], 1.0, seed + 1);
        let y = embedding(&table, ids).unwrap();
        let (tv, yv) = (table.to_vec_f64(), y.to_vec_f64());
        for (i, &id) in ids.iter().enumerate() {
            let id = id as usize;
            assert_eq!(yv[i * dim..(i + 1) * dim], tv[id * dim..(id + 1) * dim]);
        }
        let mut dtable = zeros(&[vocab, dim], DType::F64);
        embedding_backward(ids, &r, &mut dtable).unwrap();
        grad_check(&format!("embedding {ids:?}"), &table, &dtable, &r, |t| {
            embedding(t, ids).unwrap()
        });
        // Accumulates.
        let once = dtable.to_vec_f64();
        embedding_backward(ids, &r, &mut dtable).unwrap();
        for (two, one) in dtable.to_vec_f64().iter().zip(&once) {
            assert!((two - 2.0 * one).abs() < 1e-12);
        }
    }
}

#[test]
fn add_scale_and_add_assign_compute_values() {
    let a = randn(&[3, 7], 1.0, 800);
    let b = randn(&[3, 7], 1.0, 801);
    let sum = add(&a, &b).unwrap();
    let (av, bv) = (a.to_vec_f64(), b.to_vec_f64());
    for ((s, x), y) in sum.to_vec_f64().iter().zip(&av).zip(&bv) {
        assert_eq!(*s, x + y);
    }
    let mut c = a.clone();
    add_assign(&mut c, &b).unwrap();
    assert_eq!(c, sum);
    let scaled = scale(&a, -2.5).unwrap();
    for (s, x) in scaled.to_vec_f64().iter().zip(&av) {
        assert_eq!(*s, -2.5 * x);
    }
}

/// Largest |f32 − f64| of two results of the same op, relative to the larger of the
/// element's magnitude and the tensor's mean magnitude (so that entries far below the
/// tensor's scale, such as GELU's negative tail, are judged on the scale's precision).
fn worst_error(f32_out: &Tensor, f64_out: &Tensor) -> f64 {
    assert_eq!(f32_out.dtype(), DType::F32);
    assert_eq!(f64_out.dtype(), DType::F64);
    assert_eq!(f32_out.dims(), f64_out.dims());
    let want = f64_out.to_vec_f64();
    let mean_abs = want.iter().map(|v| v.abs()).sum::<f64>() / want.len().max(1) as f64;
    f32_out
        .to_vec_f64()
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(mean_abs).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

/// Runs `f` on f32 inputs and on the same values in f64 and checks the outputs agree.
fn check_f32_agrees(name: &str, inputs: &[Tensor], tol: f64, f: impl Fn(&[Tensor]) -> Vec<Tensor>) {
    let as32: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F32)).collect();
    // The f64 run sees exactly the f32 values, so only the arithmetic differs.
    let as64: Vec<Tensor> = as32.iter().map(|t| t.to_dtype(DType::F64)).collect();
    let (out32, out64) = (f(&as32), f(&as64));
    for (i, (a, b)) in out32.iter().zip(&out64).enumerate() {
        let err = worst_error(a, b);
        assert!(
            err < tol,
            "{name} output {i}: f32 vs f64 error {err:.3e} >= {tol:.0e}"
        );
    }
}

#[test]
fn f32_matches_f64() {
    // 64 × 700 = 44 800 elements: over the parallel threshold, rows longer than a lane block.
    let dims = [64, 700];
    let x = randn(&dims, 2.0, 900);
    let dy = randn(&dims, 1.0, 901);
    let bias = randn(&[700], 1.0, 902);
    // Observed worst: ~5e-7 for forwards, ~4e-6 for backwards (which sum and cancel).
    let tol = 5e-6;
    for (name, fwd, bwd, from_output) in [
        ("gelu", gelu as Unary, gelu_backward as Binary, false),
        ("relu", relu, relu_backward, false),
        ("tanh", tanh, tanh_backward, true),
        ("sigmoid", sigmoid, sigmoid_backward, true),
    ] {
        check_f32_agrees(name, &[x.clone(), dy.clone()], tol, |t| {
            let y = fwd(&t[0]).unwrap();
            let dx = bwd(if from_output { &y } else { &t[0] }, &t[1]).unwrap();
            vec![y, dx]
        });
    }
    check_f32_agrees(
        "add, scale, bias_add",
        &[x.clone(), dy.clone(), bias.clone()],
        tol,
        |t| {
            let mut dbias = zeros(&[700], t[0].dtype());
            bias_add_backward(&t[1], &mut dbias).unwrap();
            vec![
                add(&t[0], &t[1]).unwrap(),
                scale(&t[0], 0.3).unwrap(),
                bias_add(&t[0], &t[2]).unwrap(),
                scale(&dbias, 1.0 / 64.0).unwrap(),
            ]
        },
    );
    let (lx, gamma, beta) = ln_inputs(&dims, 903);
    check_f32_agrees("layer_norm", &[lx, gamma, beta, dy.clone()], tol, |t| {
        let (y, saved) = layer_norm(&t[0], &t[1], &t[2], LN_EPS).unwrap();
        let mut dgamma = zeros(&[700], t[0].dtype());
        let mut dbeta = zeros(&[700], t[0].dtype());
        let dx = layer_norm_backward(&t[0], &t[1], &saved, &t[3], &mut dgamma, &mut dbeta).unwrap();
        let LayerNormSaved { mean, rstd } = saved;
        vec![
            y,
            mean,
            rstd,
            dx,
            scale(&dgamma, 1.0 / 64.0).unwrap(),
            scale(&dbeta, 1.0 / 64.0).unwrap(),
        ]
    });
    let scores = randn(&[4, 2, 8, 700], 3.0, 904);
    let m = mask(4, 700, |b, k| k >= 700 - 100 * b);
    let r = randn(&[4, 2, 8, 700], 1.0, 905);
    check_f32_agrees("softmax", &[scores, m, r], tol, |t| {
        let y = softmax(&t[0], Some(&t[1])).unwrap();
        let dx = softmax_backward(&y, &t[2]).unwrap();
        vec![y, dx]
    });
    check_f32_agrees("dropout", std::slice::from_ref(&x), tol, |t| {
        vec![
            dropout(&t[0], 0.1, 5).unwrap(),
            dropout_backward(&t[0], 0.1, 5).unwrap(),
        ]
    });
    let ids: Vec<u32> = (0..50).map(|i| (i * 7 % 64) as u32).collect();
    check_f32_agrees("embedding", &[x, dy.clone()], tol, |t| {
        let mut dtable = zeros(&dims, t[0].dtype());
        let dy = embedding(&t[1], &ids).unwrap();
        embedding_backward(&ids, &dy, &mut dtable).unwrap();
        vec![embedding(&t[0], &ids).unwrap(), dtable]
    });
}

/// Asserts `r` is an error whose message names `op` (and each of `also`).
fn assert_err<T: std::fmt::Debug>(r: sparsevlp::Result<T>, op: &str, also: &[&str]) -> Error {
    let err = r.expect_err(op);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("{op}:")),
        "message should name {op}: {msg}"
    );
    for s in also {
        assert!(msg.contains(s), "message should contain {s:?}: {msg}");
    }
    err
}

#[test]
fn wrong_shapes_are_errors() {
    let x = randn(&[2, 5], 1.0, 1);
    let t = randn(&[5, 2], 1.0, 2);
    let v4 = randn(&[4], 1.0, 3);
    let v5 = randn(&[5], 1.0, 4);
    let scalar = Tensor::full([] as [usize; 0], 1.0, DType::F64);
    let is_shape = |e: Error| assert!(matches!(e, Error::Shape { .. }), "{e}");

    is_shape(assert_err(add(&x, &t), "add", &["[2, 5]", "[5, 2]"]));
    let mut xm = x.clone();
    is_shape(assert_err(add_assign(&mut xm, &t), "add_assign", &[]));
    is_shape(assert_err(bias_add(&x, &v4), "bias_add", &["[5]", "[4]"]));
    is_shape(assert_err(bias_add(&scalar, &v5), "bias_add", &["scalar"]));
    let mut d4 = v4.clone();
    is_shape(assert_err(
        bias_add_backward(&x, &mut d4),
        "bias_add_backward",
        &["[5]", "[4]"],
    ));
    is_shape(assert_err(gelu_backward(&x, &t), "gelu_backward", &[]));
    is_shape(assert_err(relu_backward(&x, &t), "relu_backward", &[]));
    is_shape(assert_err(tanh_backward(&x, &t), "tanh_backward", &[]));
    is_shape(assert_err(
        sigmoid_backward(&x, &t),
        "sigmoid_backward",
        &[],
    ));

    is_shape(assert_err(
        layer_norm(&x, &v4, &v5, LN_EPS),
        "layer_norm",
        &["gamma", "[4]"],
    ));
    is_shape(assert_err(
        layer_norm(&x, &v5, &v4, LN_EPS),
        "layer_norm",
        &["beta", "[4]"],
    ));
    assert_err(layer_norm(&x, &v5, &v5, -1.0), "layer_norm", &["eps"]);
    let (_, saved) = layer_norm(&x, &v5, &v5, LN_EPS).unwrap();
    let (mut dg, mut db) = (zeros(&[5], DType::F64), zeros(&[5], DType::F64));
    let bad_saved = LayerNormSaved {
        mean: v4.clone(),
        rstd: saved.rstd.clone(),
    };
    is_shape(assert_err(
        layer_norm_backward(&x, &v5, &bad_saved, &x, &mut dg, &mut db),
        "layer_norm_backward",
        &["mean", "[2]", "[4]"],
    ));
    is_shape(assert_err(
        layer_norm_backward(&x, &v5, &saved, &t, &mut dg, &mut db),
        "layer_norm_backward",
        &[],
    ));
    let mut dg4 = zeros(&[4], DType::F64);
    is_shape(assert_err(
        layer_norm_backward(&x, &v5, &saved, &x, &mut dg4, &mut db),
        "layer_norm_backward",
        &["dgamma"],
    ));

    is_shape(assert_err(softmax(&scalar, None), "softmax", &[]));
    let scores = randn(&[2, 3, 5], 1.0, 5);
    for bad in [&[2, 4][..], &[4, 5], &[0, 5], &[5]] {
        let m = zeros(bad, DType::F64);
        is_shape(assert_err(softmax(&scores, Some(&m)), "softmax", &["mask"]));
    }
    is_shape(assert_err(
        softmax_backward(&x, &t),
        "softmax_backward",
        &[],
    ));

    let table = randn(&[4, 3], 1.0, 6);
    is_shape(assert_err(embedding(&v4, &[0]), "embedding", &["rank-2"]));
    let mut dtable = zeros(&[4, 3], DType::F64);
    is_shape(assert_err(
        embedding_backward(&[0, 1], &table, &mut dtable),
        "embedding_backward",
        &["[2, 3]", "[4, 3]"],
    ));
}

#[test]
fn out_of_range_ids_and_bad_probabilities_are_errors() {
    let table = randn(&[4, 3], 1.0, 6);
    assert_err(
        embedding(&table, &[0, 3, 9, 1]),
        "embedding",
        &["id 9", "position 2", "4"],
    );
    let mut dtable = zeros(&[4, 3], DType::F64);
    let dy = randn(&[2, 3], 1.0, 7);
    assert_err(
        embedding_backward(&[1, 4], &dy, &mut dtable),
        "embedding_backward",
        &["id 4", "position 1"],
    );
    // Nothing was scattered before the error.
    assert_eq!(dtable, zeros(&[4, 3], DType::F64));

    let x = randn(&[3, 3], 1.0, 8);
    for p in [1.0, 1.5, -0.1, f64::NAN] {
        assert_err(dropout(&x, p, 0), "dropout", &["[0, 1)"]);
        assert_err(dropout_backward(&x, p, 0), "dropout_backward", &["[0, 1)"]);
    }
}

#[test]
fn half_precision_and_mixed_dtypes_are_errors() {
    let dims = [2, 4];
    let b = Tensor::randn(dims, 1.0, 1, DType::BF16);
    let h = Tensor::randn(dims, 1.0, 1, DType::F16);
    let v = Tensor::randn([4], 1.0, 2, DType::BF16);
    let unsupported = |e: Error| assert!(matches!(e, Error::UnsupportedDType { .. }), "{e}");
    unsupported(assert_err(gelu(&b), "gelu", &["bf16"]));
    unsupported(assert_err(
        gelu_backward(&b, &b),
        "gelu_backward",
        &["bf16"],
    ));
    unsupported(assert_err(relu(&h), "relu", &["f16"]));
    unsupported(assert_err(tanh(&b), "tanh", &[]));
    unsupported(assert_err(sigmoid(&b), "sigmoid", &[]));
    unsupported(assert_err(add(&b, &b), "add", &[]));
    unsupported(assert_err(scale(&b, 2.0), "scale", &[]));
    unsupported(assert_err(bias_add(&b, &v), "bias_add", &[]));
    unsupported(assert_err(
        layer_norm(&b, &v, &v, LN_EPS),
        "layer_norm",
        &["bf16"],
    ));
    unsupported(assert_err(softmax(&b, None), "softmax", &["bf16"]));
    unsupported(assert_err(
        softmax_backward(&b, &b),
        "softmax_backward",
        &[],
    ));
    unsupported(assert_err(dropout(&b, 0.1, 0), "dropout", &["bf16"]));
    let table = Tensor::randn([5, 4], 1.0, 3, DType::BF16);
    unsupported(assert_err(embedding(&table, &[1]), "embedding", &["bf16"]));

    let x32 = Tensor::randn(dims, 1.0, 4, DType::F32);
    let x64 = Tensor::randn(dims, 1.0, 4, DType::F64);
    let mismatch = |e: Error| assert!(matches!(e, Error::DTypeMismatch { .. }), "{e}");
    mismatch(assert_err(add(&x32, &x64), "add", &["f32", "f64"]));
    mismatch(assert_err(gelu_backward(&x32, &x64), "gelu_backward", &[]));
    let v64 = Tensor::randn([4], 1.0, 5, DType::F64);
    mismatch(assert_err(bias_add(&x32, &v64), "bias_add", &[]));
    mismatch(assert_err(
        layer_norm(&x32, &v64, &v64, LN_EPS),
        "layer_norm",
        &[],
    ));
    let m64 = Tensor::zeros([2, 4], DType::F64);
    mismatch(assert_err(softmax(&x32, Some(&m64)), "softmax", &[]));
    let mut d32 = Tensor::zeros([4], DType::F32);
    mismatch(assert_err(
        bias_add_backward(&x64, &mut d32),
        "bias_add_backward",
        &[],
    ));
}
