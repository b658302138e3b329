//! Finite-difference checks (f64) of the matrix-product and attention backward passes,
//! plus forward checks against naive references.

mod common;

use common::{check_qkv_gradients, project1, randn, with_values};
use sparsevlp::gradcheck::{check_gradient, GradCheckConfig};
use sparsevlp::ops::attention::{attention, attention_backward, AttentionDropout};
use sparsevlp::ops::matmul::{linear, linear_backward, matmul, matmul_backward};
use sparsevlp::{DType, Tensor};

fn naive_matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
        }
    }
    c
}

fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; a.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// (batch dims, m, k, n, shared B)
const MATMUL_CASES: &[(&[usize], usize, usize, usize, bool)] = &[
    (&[], 1, 1, 1, false),
    (&[], 3, 5, 7, false),
    (&[], 1, 9, 4, false),
    (&[2], 4, 3, 5, false),
    (&[2, 3], 2, 7, 3, false),
    (&[3], 5, 4, 2, true),
];

fn stored_dims(batch: &[usize], rows: usize, cols: usize, transposed: bool) -> Vec<usize> {
    let mut d = batch.to_vec();
    if transposed {
        d.extend([cols, rows]);
    } else {
        d.extend([rows, cols]);
    }
    d
}

#[test]
fn matmul_forward_matches_naive_for_every_transpose() {
    for &(batch, m, k, n, shared) in MATMUL_CASES {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = randn(&stored_dims(batch, m, k, ta), 1);
            let b_batch: &[usize] = if shared { &[] } else { batch };
            let b = randn(&stored_dims(b_batch, k, n, tb), 2);
            let c = matmul(&a, &b, ta, tb).unwrap();
            let nb: usize = batch.iter().product();
            let (av, bv, cv) = (a.to_vec_f64(), b.to_vec_f64(), c.to_vec_f64());
            for i in 0..nb {
                let ai = &av[i * m * k..(i + 1) * m * k];
                let bi = if shared {
                    &bv[..]
                } else {
                    &bv[i * k * n..(i + 1) * k * n]
                };
                let ai = if ta { transpose(ai, k, m) } else { ai.to_vec() };
                let bi = if tb { transpose(bi, n, k) } else { bi.to_vec() };
                let want = naive_matmul(&ai, &bi, m, k, n);
                for (x, y) in cv[i * m * n..(i + 1) * m * n].iter().zip(&want) {
                    assert!(
                        (x - y).abs() < 1e-12,
                        "case {batch:?} {m}x{k}x{n} ta={ta} tb={tb}"
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_backward_matches_finite_differences() {
    for &(batch, m, k, n, shared) in MATMUL_CASES {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = randn(&stored_dims(batch, m, k, ta), 3);
            let b_batch: &[usize] = if shared { &[] } else { batch };
            let b = randn(&stored_dims(b_batch, k, n, tb), 4);
            let c = matmul(&a, &b, ta, tb).unwrap();
            let r = randn(c.dims(), 5);
            let (da, db) = matmul_backward(&a, &b, ta, tb, &r).unwrap();
            let name = format!("matmul {batch:?} {m}x{k}x{n} ta={ta} tb={tb} shared={shared}");
            let cfg = GradCheckConfig::default();
            check_gradient(
                &format!("{name} dA"),
                &a.to_vec_f64(),
                &da.to_vec_f64(),
                |v| project1(&matmul(&with_values(&a, v), &b, ta, tb).unwrap(), &r),
                cfg,
            )
            .unwrap();
            check_gradient(
                &format!("{name} dB"),
                &b.to_vec_f64(),
                &db.to_vec_f64(),
                |v| project1(&matmul(&a, &with_values(&b, v), ta, tb).unwrap(), &r),
                cfg,
            )
            .unwrap();
        }
    }
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let a = randn(&[2, 3], 1);
    let b = randn(&[4, 5], 2);
    let err = matmul(&a, &b, false, false).unwrap_err().to_string();
    assert!(
        err.contains("matmul") && err.contains("inner dimensions"),
        "{err}"
    );
    let b = randn(&[3, 3, 2], 2);
    let a3 = randn(&[2, 3, 3], 1);
    assert!(matmul(&a3, &b, false, false).is_err());
    let bf = Tensor::zeros([3, 2], DType::BF16);
    assert!(matmul(&a, &bf, false, false).is_err());
}

#[test]
fn linear_backward_matches_finite_differences() {
    for (dims, out_f, bias) in [
        (vec![1, 1], 1, true),
        (vec![1, 3], 4, true),
        (vec![2, 5, 7], 3, true),
        (vec![6, 2], 5, false),
    ] {
        let in_f = *dims.last().unwrap();
        let x = randn(&dims, 11);
        let w = randn(&[out_f, in_f], 12);
        let b = randn(&[out_f], 13);
        let bias_ref = bias.then_some(&b);
        let y = linear(&x, &w, bias_ref).unwrap();
        let r = randn(y.dims(), 14);
        let mut dw = randn(w.dims(), 15); // accumulation onto existing values
        let dw0 = dw.to_vec_f64();
        let mut db = randn(&[out_f], 16);
        let db0 = db.to_vec_f64();
        let dx = linear_backward(&x, &w, &r, &mut dw, bias.then_some(&mut db)).unwrap();
        let sub = |a: Vec<f64>, b: &[f64]| a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>();
        let cfg = GradCheckConfig::default();
        let name = format!("linear {dims:?}->{out_f}");
        check_gradient(
            &format!("{name} dX"),
            &x.to_vec_f64(),
            &dx.to_vec_f64(),
            |v| project1(&linear(&with_values(&x, v), &w, bias_ref).unwrap(), &r),
            cfg,
        )
        .unwrap();
        check_gradient(
            &format!("{name} dW"),
            &w.to_vec_f64(),
            &sub(dw.to_vec_f64(), &dw0),
            |v| project1(&linear(&x, &with_values(&w, v), bias_ref).unwrap(), &r),
            cfg,
        )
        .unwrap();
        if bias {
            check_gradient(
                &format!("{name} db"),
                &b.to_vec_f64(),
                &sub(db.to_vec_f64(), &db0),
                |v| project1(&linear(&x, &w, Some(&with_values(&b, v))).unwrap(), &r),
                cfg,
            )
            .unwrap();
        } else {
            assert_eq!(db.to_vec_f64(), db0, "no bias: db untouched");
        }
    }
}

#[test]
fn linear_rejects_wrong_in_features() {
    let x = randn(&[2, 4], 1);
    let w = randn(&[3, 5], 2);
    let err = linear(&x, &w, None).unwrap_err().to_string();
    assert!(err.contains("linear") && err.contains("[3, 5]"), "{err}");
}

/// Naive attention in f64 for one (batch, head): softmax(q kᵀ/√d + mask) v.
fn naive_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> Vec<f64> {
    let [b, tq, hd] = <[usize; 3]>::try_from(q.dims()).unwrap();
    let tk = k.dims()[1];
    let d = hd / heads;
    let (qv, kv, vv) = (q.to_vec_f64(), k.to_vec_f64(), v.to_vec_f64());
    let mv = mask.map(|m| m.to_vec_f64());
    let mut out = vec![0.0; b * tq * hd];
    for bi in 0..b {
        for h in 0..heads {
            for i in 0..tq {
                let mut s: Vec<f64> = (0..tk)
                    .map(|j| {
                        let dotp: f64 = (0..d)
                            .map(|c| {
                                qv[(bi * tq + i) * hd + h * d + c]
                                    * kv[(bi * tk + j) * hd + h * d + c]
                            })
                            .sum();
                        dotp / (d as f64).sqrt() + mv.as_ref().map_or(0.0, |m| m[bi * tk + j])
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s
                    .iter_mut()
                    .map(|x| {
                        *x = (*x - mx).exp();
                        *x
                    })
                    .sum();
                for c in 0..d {
                    out[(bi * tq + i) * hd + h * d + c] = (0..tk)
                        .map(|j| s[j] / z * vv[(bi * tk + j) * hd + h * d + c])
                        .sum();
                }
            }
        }
    }
    out
}

/// A [B, Tk] additive mask that pads the last `pad[b]` keys of batch b.
fn padding_mask(b: usize, tk: usize, pad: &[usize]) -> Tensor {
    let mut m = vec![0.0; b * tk];
    for (bi, &p) in pad.iter().enumerate() {
        for j in tk - p..tk {
            m[bi * tk + j] = -1e9;
        }
    }
    Tensor::from_vec(m, [b, tk]).unwrap()
}

/// (batch, tq, tk, heads, head dim, padded keys per batch)
type AttentionCase = (usize, usize, usize, usize, usize, &'static [usize]);
const ATTENTION_CASES: &[AttentionCase] = &[
    (1, 1, 1, 1, 1, &[0]),
    (1, 4, 4, 2, 3, &[1]),
    (2, 5, 5, 3, 2, &[0, 2]),
    (2, 3, 6, 2, 4, &[3, 1]),
    (3, 7, 2, 1, 5, &[0, 1, 0]),
];

#[test]
fn attention_forward_matches_naive() {
    for &(b, tq, tk, h, d, pad) in ATTENTION_CASES {
        let q = randn(&[b, tq, h * d], 21);
        let k = randn(&[b, tk, h * d], 22);
        let v = randn(&[b, tk, h * d], 23);
        let mask = padding_mask(b, tk, pad);
        let (out, saved) = attention(&q, &k, &v, h, Some(&mask), None).unwrap();
        let want = naive_attention(&q, &k, &v, h, Some(&mask));
        for (x, y) in out.to_vec_f64().iter().zip(&want) {
            assert!((x - y).abs() < 1e-12, "case b={b} tq={tq} tk={tk} h={h}");
        }
        // Padded keys get zero probability.
        let p = saved.stats.to_vec_f64();
        for bi in 0..b {
            for row in 0..h * tq {
                for j in tk - pad[bi]..tk {
                    assert!(p[((bi * h * tq) + row) * tk + j] < 1e-300);
                }
            }
        }
    }
}

#[test]
fn attention_f32_agrees_with_f64() {
    let q = randn(&[2, 9, 12], 31);
    let k = randn(&[2, 7, 12], 32);
    let v = randn(&[2, 7, 12], 33);
    let mask = padding_mask(2, 7, &[0, 3]);
    let (want, _) = attention(&q, &k, &v, 3, Some(&mask), None).unwrap();
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let (got, _) = attention(&f(&q), &f(&k), &f(&v), 3, Some(&f(&mask)), None).unwrap();
    let (w, g) = (want.to_vec_f64(), got.to_vec_f64());
    let err: f64 = w
        .iter()
        .zip(&g)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = w.iter().map(|a| a * a).sum::<f64>().sqrt();
    assert!(err / norm < 1e-6, "relative error {}", err / norm);
}

#[test]
fn attention_backward_matches_finite_differences() {
    for &(b, tq, tk, h, d, pad) in ATTENTION_CASES {
        for dropout in [None, Some(AttentionDropout { p: 0.25, seed: 5 })] {
            let q = randn(&[b, tq, h * d], 41);
            let k = randn(&[b, tk, h * d], 42);
            let v = randn(&[b, tk, h * d], 43);
            let mask = padding_mask(b, tk, pad);
            let run = |q: &Tensor, k: &Tensor, v: &Tensor| {
                attention(q, k, v, h, Some(&mask), dropout).unwrap()
            };
            let (out, saved) = run(&q, &k, &v);
            let r = randn(out.dims(), 44);
            let (dq, dk, dv) = attention_backward(&q, &k, &v, &saved, &r).unwrap();
            let name = format!("attention b={b} tq={tq} tk={tk} h={h} d={d} dropout={dropout:?}");
            check_qkv_gradients(&name, (&q, &k, &v), (&dq, &dk, &dv), &r, |q, k, v| {
                run(q, k, v).0
            });
        }
    }
}

#[test]
fn attention_dropout_is_seeded() {
    let q = randn(&[2, 6, 8], 51);
    let drop = Some(AttentionDropout { p: 0.5, seed: 9 });
    let (a, _) = attention(&q, &q, &q, 2, None, drop).unwrap();
    let (b, _) = attention(&q, &q, &q, 2, None, drop).unwrap();
    let (c, _) = attention(
        &q,
        &q,
        &q,
        2,
        None,
        Some(AttentionDropout { p: 0.5, seed: 10 }),
    )
    .unwrap();
    let (plain, _) = attention(&q, &q, &q, 2, None, None).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, plain);
}

#[test]
fn attention_rejects_bad_shapes() {
    let q = randn(&[2, 3, 8], 1);
    let k = randn(&[2, 4, 8], 2);
    let err = attention(&q, &k, &k, 3, None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("divisible"), "{err}");
    let bad_mask = randn(&[2, 3], 3);
    let err = attention(&q, &k, &k, 2, Some(&bad_mask), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("key mask") && err.contains("[2, 4]"), "{err}");
    let k1 = randn(&[1, 4, 8], 2);
    assert!(attention(&q, &k1, &k1, 2, None, None).is_err());
}
