//! Gradient checks, value tests and error tests for the losses (BCE on logits, softmax
//! cross-entropy) and the AdamW step.

use sparsevlp::gradcheck::{check_gradient, dot, GradCheckConfig};
use sparsevlp::ops::adamw::{adamw_step, AdamWConfig};
use sparsevlp::ops::loss::{
    bce_with_logits, bce_with_logits_backward, cross_entropy, cross_entropy_backward, mean,
};
use sparsevlp::{DType, Error, Tensor};

const SHAPES: [[usize; 2]; 4] = [[1, 1], [1, 5], [4, 7], [9, 3]];

fn f64_tensor(data: &[f64], dims: [usize; 2]) -> Tensor {
    Tensor::from_vec(data.to_vec(), dims).unwrap()
}

/// Deterministic class indices in `0..c`.
fn classes(b: usize, c: usize, seed: usize) -> Vec<usize> {
    (0..b).map(|i| (i * 7 + seed * 3 + 1) % c).collect()
}

#[test]
fn bce_gradient_matches_finite_differences() {
    for (k, dims) in SHAPES.into_iter().enumerate() {
        let seed = 10 + k as u64;
        let x = Tensor::randn(dims, 2.0, seed, DType::F64);
        let t = Tensor::uniform(dims, 0.0, 1.0, seed + 100, DType::F64);
        let w = Tensor::randn([dims[0]], 1.0, seed + 200, DType::F64);
        let analytic = bce_with_logits_backward(&x, &t, &w).unwrap();
        let wv = w.to_vec_f64();
        let loss = |xs: &[f64]| {
            let l = bce_with_logits(&f64_tensor(xs, dims), &t).unwrap();
            dot(&l.to_vec_f64(), &wv)
        };
        check_gradient(
            &format!("bce {dims:?}"),
            &x.to_vec_f64(),
            &analytic.to_vec_f64(),
            loss,
            GradCheckConfig::default(),
        )
        .unwrap();
    }
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    for (k, dims) in SHAPES.into_iter().enumerate() {
        let seed = 30 + k as u64;
        let x = Tensor::randn(dims, 2.0, seed, DType::F64);
        let targets = classes(dims[0], dims[1], k);
        let w = Tensor::randn([dims[0]], 1.0, seed + 200, DType::F64);
        let analytic = cross_entropy_backward(&x, &targets, &w).unwrap();
        let wv = w.to_vec_f64();
        let loss = |xs: &[f64]| {
            let l = cross_entropy(&f64_tensor(xs, dims), &targets).unwrap();
            dot(&l.to_vec_f64(), &wv)
        };
        check_gradient(
            &format!("cross_entropy {dims:?}"),
            &x.to_vec_f64(),
            &analytic.to_vec_f64(),
            loss,
            GradCheckConfig::default(),
        )
        .unwrap();
    }
}

#[test]
fn bce_values_by_hand() {
    // logit 0, target 0.5: softplus(0) = ln 2.
    let l = bce_with_logits(&f64_tensor(&[0.0], [1, 1]), &f64_tensor(&[0.5], [1, 1])).unwrap();
    assert!((l.to_vec_f64()[0] - std::f64::consts::LN_2).abs() < 1e-15);
    // Row sums: [ln(1+e^2) − 2·1, ln(1+e^−1) − 0] and [ln(1+e^3) − 0.25·3].
    let x = f64_tensor(&[2.0, -1.0, 3.0, 0.0], [2, 2]);
    let t = f64_tensor(&[1.0, 0.0, 0.25, 1.0], [2, 2]);
    let want0 = (1.0 + 2f64.exp()).ln() - 2.0 + (1.0 + (-1f64).exp()).ln();
    let want1 = (1.0 + 3f64.exp()).ln() - 0.75 + std::f64::consts::LN_2;
    let got = bce_with_logits(&x, &t).unwrap().to_vec_f64();
    assert!((got[0] - want0).abs() < 1e-14, "{got:?}");
    assert!((got[1] - want1).abs() < 1e-14, "{got:?}");
    // Gradient σ(x) − t, scaled per example.
    let d = Tensor::from_vec(vec![2.0f64, -1.0], [2]).unwrap();
    let g = bce_with_logits_backward(&x, &t, &d).unwrap().to_vec_f64();
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let want = [
        2.0 * (sig(2.0) - 1.0),
        2.0 * sig(-1.0),
        -(sig(3.0) - 0.25),
        -(0.5 - 1.0),
    ];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{g:?} vs {want:?}");
    }
}

#[test]
fn cross_entropy_values_by_hand() {
    for c in [1usize, 2, 5, 3129] {
        let x = Tensor::full([3, c], 0.7, DType::F64);
        let l = cross_entropy(&x, &classes(3, c, 1)).unwrap();
        for v in l.to_vec_f64() {
            assert!((v - (c as f64).ln()).abs() < 1e-12, "C={c}: {v}");
        }
    }
    // [1, 2, 3] with target 2: ln(e + e² + e³) − 3.
    let x = f64_tensor(&[1.0, 2.0, 3.0], [1, 3]);
    let want = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0;
    let got = cross_entropy(&x, &[2]).unwrap().to_vec_f64()[0];
    assert!((got - want).abs() < 1e-15);
    // Gradient: softmax − onehot.
    let g = cross_entropy_backward(&x, &[2], &Tensor::full([1], 1.0, DType::F64))
        .unwrap()
        .to_vec_f64();
    let z: f64 = [1f64, 2.0, 3.0].iter().map(|v| v.exp()).sum();
    let want = [1f64.exp() / z, 2f64.exp() / z, 3f64.exp() / z - 1.0];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{g:?}");
    }
    assert!(g.iter().sum::<f64>().abs() < 1e-15);
}

#[test]
fn large_logits_stay_finite() {
    for dtype in [DType::F32, DType::F64] {
        let x = Tensor::from_vec(vec![100.0f64, -100.0, 100.0, -100.0], [2, 2])
            .unwrap()
            .to_dtype(dtype);
        let t = Tensor::from_vec(vec![0.0f64, 1.0, 1.0, 0.0], [2, 2])
            .unwrap()
            .to_dtype(dtype);
        let l = bce_with_logits(&x, &t).unwrap().to_vec_f64();
        // Row 0 is wrong by 100 twice; row 1 is right twice (loss e^-100 each).
        assert!((l[0] - 200.0).abs() < 1e-3, "{dtype}: {l:?}");
        assert!(l[1].is_finite() && l[1].abs() < 1e-6, "{dtype}: {l:?}");
        let d = Tensor::full([2], 1.0, dtype);
        let g = bce_with_logits_backward(&x, &t, &d).unwrap().to_vec_f64();
        assert!(g.iter().all(|v| v.is_finite()), "{dtype}: {g:?}");
        assert!(
            (g[0] - 1.0).abs() < 1e-6 && (g[1] + 1.0).abs() < 1e-6,
            "{g:?}"
        );

        let ce = cross_entropy(&x, &[1, 0]).unwrap().to_vec_f64();
        assert!(
            (ce[0] - 200.0).abs() < 1e-3 && ce[1].abs() < 1e-6,
            "{dtype}: {ce:?}"
        );
        let g = cross_entropy_backward(&x, &[1, 0], &d)
            .unwrap()
            .to_vec_f64();
        assert!(g.iter().all(|v| v.is_finite()), "{dtype}: {g:?}");
        assert!(
            (g[0] - 1.0).abs() < 1e-6 && (g[1] + 1.0).abs() < 1e-6,
            "{g:?}"
        );
    }
}

#[test]
fn f32_agrees_with_f64() {
    // Large enough to take the parallel paths as well.
    for dims in [[4, 7], [64, 3129]] {
        let x = Tensor::randn(dims, 3.0, 5, DType::F64);
        let t = Tensor::uniform(dims, 0.0, 1.0, 6, DType::F64);
        let d = Tensor::randn([dims[0]], 1.0, 7, DType::F64);
        let targets = classes(dims[0], dims[1], 2);
        let pairs = [
            (
                bce_with_logits(&x, &t).unwrap(),
                bce_with_logits(&x.to_dtype(DType::F32), &t.to_dtype(DType::F32)).unwrap(),
            ),
            (
                bce_with_logits_backward(&x, &t, &d).unwrap(),
                bce_with_logits_backward(
                    &x.to_dtype(DType::F32),
                    &t.to_dtype(DType::F32),
                    &d.to_dtype(DType::F32),
                )
                .unwrap(),
            ),
            (
                cross_entropy(&x, &targets).unwrap(),
                cross_entropy(&x.to_dtype(DType::F32), &targets).unwrap(),
            ),
            (
                cross_entropy_backward(&x, &targets, &d).unwrap(),
                cross_entropy_backward(&x.to_dtype(DType::F32), &targets, &d.to_dtype(DType::F32))
                    .unwrap(),
            ),
        ];
        for (i, (want, got)) in pairs.iter().enumerate() {
            assert_eq!(got.dtype(), DType::F32);
            assert_eq!(got.dims(), want.dims());
            let scale = want.to_vec_f64().iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (a, b) in got.to_vec_f64().iter().zip(want.to_vec_f64()) {
                assert!(
                    (a - b).abs() < 2e-5 * scale,
                    "pair {i} {dims:?}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn mean_averages() {
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 6.0], [3]).unwrap();
    assert_eq!(mean(&x).unwrap(), 3.0);
    assert!(mean(&Tensor::from_vec(Vec::<f64>::new(), [0]).unwrap()).is_err());
}

#[test]
fn loss_errors() {
    let x = Tensor::randn([2, 3], 1.0, 1, DType::F32);
    let t = Tensor::uniform([2, 3], 0.0, 1.0, 2, DType::F32);
    let d = Tensor::full([2], 1.0, DType::F32);
    // Shape mismatches.
    assert!(matches!(
        bce_with_logits(&x, &Tensor::uniform([3, 2], 0.0, 1.0, 2, DType::F32)),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        bce_with_logits(
            &x.clone().reshape([6]).unwrap(),
            &t.clone().reshape([6]).unwrap()
        ),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        bce_with_logits_backward(&x, &t, &Tensor::full([3], 1.0, DType::F32)),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(cross_entropy(&x, &[0]), Err(Error::Shape { .. })));
    assert!(matches!(
        cross_entropy_backward(&x, &[0, 1], &Tensor::full([1], 1.0, DType::F32)),
        Err(Error::Shape { .. })
    ));
    // Dtype mismatches and unsupported dtypes.
    assert!(matches!(
        bce_with_logits(&x, &t.to_dtype(DType::F64)),
        Err(Error::DTypeMismatch { .. })
    ));
    assert!(matches!(
        cross_entropy_backward(&x, &[0, 1], &d.to_dtype(DType::F64)),
        Err(Error::DTypeMismatch { .. })
    ));
    for dtype in [DType::BF16, DType::F16] {
        let e = bce_with_logits(&x.to_dtype(dtype), &t.to_dtype(dtype)).unwrap_err();
        assert!(matches!(e, Error::UnsupportedDType { .. }), "{e}");
        let e = cross_entropy(&x.to_dtype(dtype), &[0, 1]).unwrap_err();
        assert!(matches!(e, Error::UnsupportedDType { .. }), "{e}");
        assert!(mean(&d.to_dtype(dtype)).is_err());
    }
    // Out-of-range class index names the example.
    let msg = cross_entropy(&x, &[1, 3]).unwrap_err().to_string();
    assert!(
        msg.contains("example 1") && msg.contains("3 classes"),
        "{msg}"
    );
    let msg = cross_entropy_backward(&x, &[7, 0], &d)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("example 0"), "{msg}");
    // Soft targets outside [0, 1] (or NaN) name the entry.
    for bad in [1.5f32, -0.1, f32::NAN] {
        let mut tv = t.to_vec_f32();
        tv[4] = bad;
        let bad_t = Tensor::from_vec(tv, [2, 3]).unwrap();
        let msg = bce_with_logits(&x, &bad_t).unwrap_err().to_string();
        assert!(msg.contains("[1, 1]"), "{msg}");
        assert!(bce_with_logits_backward(&x, &bad_t, &d).is_err());
    }
}

/// A plain scalar AdamW, written from the paper's formulas with bias-corrected moments.
fn reference_adamw(
    p: &mut [f64],
    g: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    c: &AdamWConfig,
    t: u64,
) {
    for i in 0..p.len() {
        p[i] -= c.lr * c.weight_decay * p[i];
        m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g[i];
        v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
        let m_hat = m[i] / (1.0 - c.beta1.powi(t as i32));
        let v_hat = v[i] / (1.0 - c.beta2.powi(t as i32));
        p[i] -= c.lr * m_hat / (v_hat.sqrt() + c.eps);
    }
}

#[test]
fn adamw_matches_scalar_reference() {
    let configs = [
        AdamWConfig::default(),
        AdamWConfig {
            lr: 0.05,
            beta1: 0.8,
            beta2: 0.95,
            eps: 1e-6,
            weight_decay: 0.3,
        },
    ];
    // The second size exceeds the serial threshold, exercising the parallel path.
    for (n, cfg) in [
        (37usize, configs[0]),
        (37, configs[1]),
        (100_003, configs[1]),
    ] {
        for dtype in [DType::F64, DType::F32] {
            let mut p = Tensor::randn([n], 1.0, 1, DType::F64).to_dtype(dtype);
            let mut m = Tensor::zeros([n], dtype);
            let mut v = Tensor::zeros([n], dtype);
            let mut rp = p.to_vec_f64();
            let (mut rm, mut rv) = (vec![0.0; n], vec![0.0; n]);
            for step in 1..=3u64 {
                let g = Tensor::randn([n], 0.5, 10 + step, DType::F64).to_dtype(dtype);
                adamw_step(&mut p, &g, &mut m, &mut v, &cfg, step).unwrap();
                reference_adamw(&mut rp, &g.to_vec_f64(), &mut rm, &mut rv, &cfg, step);
            }
            let tol = if dtype == DType::F64 { 1e-12 } else { 2e-6 };
            for (name, got, want) in [
                ("p", p.to_vec_f64(), &rp),
                ("m", m.to_vec_f64(), &rm),
                ("v", v.to_vec_f64(), &rv),
            ] {
                for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
                    assert!(
                        (a - b).abs() <= tol * (1.0 + b.abs()),
                        "{dtype} n={n} {name}[{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn adamw_first_step_moves_by_lr() {
    // With bias correction the first step moves every entry by ≈ lr·sign(g) (eps ≪ |g|).
    let cfg = AdamWConfig {
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut p = Tensor::full([4], 1.0, DType::F64);
    let g = Tensor::from_vec(vec![0.3f64, -2.0, 1e-3, -0.5], [4]).unwrap();
    let mut m = Tensor::zeros([4], DType::F64);
    let mut v = m.clone();
    adamw_step(&mut p, &g, &mut m, &mut v, &cfg, 1).unwrap();
    let want = [1.0 - 1e-3, 1.0 + 1e-3, 1.0 - 1e-3, 1.0 + 1e-3];
    for (a, b) in p.to_vec_f64().iter().zip(want) {
        assert!((a - b).abs() < 1e-7, "{a} vs {b}");
    }
}

#[test]
fn adamw_errors() {
    let cfg = AdamWConfig::default();
    let zeros = |n: usize, dtype| Tensor::zeros([n], dtype);
    let mut p = zeros(3, DType::F32);
    let g = zeros(3, DType::F32);
    let mut m = zeros(3, DType::F32);
    let mut v = zeros(3, DType::F32);
    let msg = adamw_step(&mut p, &g, &mut m, &mut v, &cfg, 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("step"), "{msg}");
    assert!(matches!(
        adamw_step(&mut p, &zeros(4, DType::F32), &mut m, &mut v, &cfg, 1),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        adamw_step(&mut p, &g, &mut zeros(2, DType::F32), &mut v, &cfg, 1),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        adamw_step(&mut p, &g, &mut m, &mut zeros(3, DType::F64), &cfg, 1),
        Err(Error::DTypeMismatch { .. })
    ));
    let mut pb = zeros(3, DType::BF16);
    let (gb, mut mb, mut vb) = (
        zeros(3, DType::BF16),
        zeros(3, DType::BF16),
        zeros(3, DType::BF16),
    );
    assert!(matches!(
        adamw_step(&mut pb, &gb, &mut mb, &mut vb, &cfg, 1),
        Err(Error::UnsupportedDType { .. })
    ));
    for (name, bad) in [
        ("beta1", AdamWConfig { beta1: 1.0, ..cfg }),
        ("beta2", AdamWConfig { beta2: -0.1, ..cfg }),
        (
            "lr",
            AdamWConfig {
                lr: f64::NAN,
                ..cfg
            },
        ),
        ("eps", AdamWConfig { eps: -1.0, ..cfg }),
        (
            "weight_decay",
            AdamWConfig {
                weight_decay: f64::INFINITY,
                ..cfg
            },
        ),
    ] {
        let msg = adamw_step(&mut p, &g, &mut m, &mut v, &bad, 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(name), "{bad:?}: {msg}");
    }
    // Failed steps leave everything untouched.
    assert!(p
        .to_vec_f64()
        .iter()
        .chain(&m.to_vec_f64())
        .all(|&x| x == 0.0));
}
