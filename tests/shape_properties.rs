//! Property tests over random shapes: products agree with a naive reference for every
//! transpose combination and batch layout, and row-wise ops keep shapes and normalise.

use proptest::prelude::*;
use sparsevlp::ops::layernorm::layer_norm;
use sparsevlp::ops::matmul::{linear, matmul};
use sparsevlp::ops::softmax::softmax;
use sparsevlp::{DType, Tensor};

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 1.0, seed, DType::F64)
}

/// op(A)[i, p] for stored A `[r, c]` (transposed when `t`).
fn at(a: &[f64], cols: usize, t: bool, i: usize, p: usize) -> f64 {
    if t {
        a[p * cols + i]
    } else {
        a[i * cols + p]
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matmul_matches_naive(
        batch in 1usize..4, m in 1usize..9, k in 1usize..9, n in 1usize..9,
        ta: bool, tb: bool, shared: bool, seed in 0u64..1000,
    ) {
        let a_dims = if ta { [batch, k, m] } else { [batch, m, k] };
        let a = randn(&a_dims, seed);
        let b = if shared {
            randn(&if tb { vec![n, k] } else { vec![k, n] }, seed + 1)
        } else {
            randn(&if tb { vec![batch, n, k] } else { vec![batch, k, n] }, seed + 1)
        };
        let c = matmul(&a, &b, ta, tb).unwrap();
        prop_assert_eq!(c.dims(), &[batch, m, n]);
        let (av, bv, cv) = (a.to_vec_f64(), b.to_vec_f64(), c.to_vec_f64());
        let (a_cols, b_cols) = (a_dims[2], b.dims()[b.dims().len() - 1]);
        for bi in 0..batch {
            let am = &av[bi * m * k..(bi + 1) * m * k];
            let bm = if shared { &bv[..] } else { &bv[bi * k * n..(bi + 1) * k * n] };
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|p| at(am, a_cols, ta, i, p) * at(bm, b_cols, tb, p, j)).sum();
                    prop_assert!((cv[(bi * m + i) * n + j] - want).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn linear_keeps_leading_dims(lead in proptest::collection::vec(1usize..4, 1..4), inf in 1usize..7, outf in 1usize..7) {
        let mut dims = lead.clone();
        dims.push(inf);
        let y = linear(&randn(&dims, 1), &randn(&[outf, inf], 2), Some(&randn(&[outf], 3))).unwrap();
        let mut want = lead;
        want.push(outf);
        prop_assert_eq!(y.dims(), &want[..]);
    }

    #[test]
    fn softmax_rows_sum_to_one(rows in 1usize..6, n in 1usize..9, groups in 1usize..3, seed in 0u64..1000) {
        let x = randn(&[groups * rows, n], seed);
        let mask = randn(&[groups, n], seed + 1);
        let y = softmax(&x, Some(&mask)).unwrap().to_vec_f64();
        for row in y.chunks(n) {
            prop_assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            prop_assert!(row.iter().all(|&p| p >= 0.0));
        }
    }

    #[test]
    fn layer_norm_standardises_rows(rows in 1usize..6, n in 2usize..17, seed in 0u64..1000) {
        let x = randn(&[rows, n], seed);
        let ones = Tensor::full([n], 1.0, DType::F64);
        let zeros = Tensor::full([n], 0.0, DType::F64);
        let (y, _) = layer_norm(&x, &ones, &zeros, 1e-12).unwrap();
        for row in y.to_vec_f64().chunks(n) {
            let mean = row.iter().sum::<f64>() / n as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            prop_assert!(mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-6);
        }
    }
}
