//! The training objectives of `train::loss` (CE, LMH, PoE, RUBi, LPF): finite-difference
//! gradient checks in f64 (logits; for LMH also pooled and the gate's parameters), values
//! against naive formulas written here, errors for bad inputs, and `LossKind` parsing.

mod common;

use common::{randn, with_values};
use sparsevlp::gradcheck::{check_gradient, GradCheckConfig};
use sparsevlp::train::loss::{
    build_objective, LossInputs, LossKind, Objective, LMH_ENTROPY_WEIGHT, LMH_SMOOTHING, LPF_GAMMA,
};
use sparsevlp::{DType, Tensor};

/// The losses this file covers (BCE is covered by tests/grad_losses.rs).
const DEBIAS: [LossKind; 5] = [
    LossKind::Ce,
    LossKind::Lmh,
    LossKind::Poe,
    LossKind::Rubi,
    LossKind::Lpf,
];

/// `[B, A, H]` cases, including a single example and a single answer.
const SHAPES: [[usize; 3]; 5] = [[1, 1, 1], [1, 5, 3], [4, 7, 6], [9, 3, 4], [3, 1, 2]];

/// One batch of loss inputs, owned.
struct Batch {
    logits: Tensor,
    pooled: Tensor,
    targets: Tensor,
    prior: Tensor,
    top: Vec<Option<usize>>,
}

impl Batch {
    /// Random logits / pooled, soft targets with every third row empty (no top answer),
    /// and a prior strictly inside (0, 1).
    fn random([b, a, h]: [usize; 3], seed: u64) -> Batch {
        let logits = Tensor::randn([b, a], 2.0, seed, DType::F64);
        let pooled = randn(&[b, h], seed + 1);
        let mut t = Tensor::uniform([b, a], 0.0, 1.0, seed + 2, DType::F64).to_vec_f64();
        for (r, row) in t.chunks_mut(a).enumerate() {
            if r % 3 == 2 {
                row.fill(0.0);
            }
        }
        let top = t
            .chunks(a)
            .map(|row| {
                let (i, &m) = row
                    .iter()
                    .enumerate()
                    .max_by(|x, y| x.1.total_cmp(y.1))
                    .unwrap();
                (m > 0.0).then_some(i)
            })
            .collect();
        Batch {
            logits,
            pooled,
            targets: Tensor::from_vec(t, [b, a]).unwrap(),
            prior: Tensor::uniform([b, a], 0.05, 0.95, seed + 3, DType::F64),
            top,
        }
    }

    fn inputs(&self) -> LossInputs<'_> {
        LossInputs {
            logits: &self.logits,
            pooled: &self.pooled,
            targets: &self.targets,
            prior: &self.prior,
            top_answers: &self.top,
        }
    }

    fn dims(&self) -> [usize; 2] {
        [self.logits.dims()[0], self.logits.dims()[1]]
    }
}

/// An f64 objective for pooled width `h`; LMH's gate gets large, non-trivial values so
/// every part of its gradient matters.
fn objective(kind: LossKind, h: usize) -> Box<dyn Objective> {
    let mut obj = build_objective(kind, h, 7).unwrap();
    obj.to_dtype(DType::F64);
    let mut k = 0;
    obj.visit_params_mut(&mut |p| {
        let std = if k == 0 { 0.7 } else { 0.4 };
        p.value = Tensor::randn(p.value.dims(), std, 50 + k, DType::F64);
        k += 1;
    });
    obj
}

fn loss_of(kind: LossKind, h: usize, inputs: &LossInputs) -> f64 {
    objective(kind, h).forward(inputs).unwrap()
}

#[test]
fn every_loss_gradient_matches_finite_differences_on_the_logits() {
    for kind in DEBIAS {
        for (s, shape) in SHAPES.into_iter().enumerate() {
            let batch = Batch::random(shape, 100 + s as u64);
            let mut obj = objective(kind, shape[2]);
            obj.forward(&batch.inputs()).unwrap();
            let grads = obj.backward().unwrap();
            assert_eq!(grads.dpooled.is_some(), kind == LossKind::Lmh, "{kind}");
            let loss = |x: &[f64]| {
                let logits = with_values(&batch.logits, x);
                loss_of(
                    kind,
                    shape[2],
                    &LossInputs {
                        logits: &logits,
                        ..batch.inputs()
                    },
                )
            };
            check_gradient(
                &format!("{kind} {shape:?} dlogits"),
                &batch.logits.to_vec_f64(),
                &grads.dlogits.to_vec_f64(),
                loss,
                GradCheckConfig::default(),
            )
            .unwrap();
        }
    }
}

#[test]
fn lmh_gradient_matches_finite_differences_on_pooled_and_gate() {
    for (s, shape) in SHAPES.into_iter().enumerate() {
        let h = shape[2];
        let batch = Batch::random(shape, 200 + s as u64);
        let mut obj = objective(LossKind::Lmh, h);
        obj.forward(&batch.inputs()).unwrap();
        let dpooled = obj.backward().unwrap().dpooled.unwrap();
        let loss = |x: &[f64]| {
            let pooled = with_values(&batch.pooled, x);
            loss_of(
                LossKind::Lmh,
                h,
                &LossInputs {
                    pooled: &pooled,
                    ..batch.inputs()
                },
            )
        };
        check_gradient(
            &format!("lmh {shape:?} dpooled"),
            &batch.pooled.to_vec_f64(),
            &dpooled.to_vec_f64(),
            loss,
            GradCheckConfig::default(),
        )
        .unwrap();

        let mut params = Vec::new();
        obj.visit_params(&mut |p| params.push((p.name.clone(), p.value.clone(), p.grad.clone())));
        let names: Vec<&str> = params.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["lmh.gate.weight", "lmh.gate.bias"]);
        for (k, (name, value, grad)) in params.iter().enumerate() {
            assert!(
                grad.to_vec_f64().iter().any(|&g| g != 0.0),
                "{name} got no gradient"
            );
            let loss = |x: &[f64]| {
                let mut o = objective(LossKind::Lmh, h);
                let mut i = 0;
                o.visit_params_mut(&mut |p| {
                    if i == k {
                        p.value = with_values(value, x);
                    }
                    i += 1;
                });
                o.forward(&batch.inputs()).unwrap()
            };
            check_gradient(
                &format!("lmh {shape:?} {name}"),
                &value.to_vec_f64(),
                &grad.to_vec_f64(),
                loss,
                GradCheckConfig::default(),
            )
            .unwrap();
        }
    }
}

#[test]
fn lmh_gate_gradients_accumulate_and_f32_runs() {
    let batch = Batch::random([4, 5, 3], 300);
    let mut obj = objective(LossKind::Lmh, 3);
    let grad = |o: &dyn Objective| {
        let mut g = Vec::new();
        o.visit_params(&mut |p| g.extend(p.grad.to_vec_f64()));
        g
    };
    obj.forward(&batch.inputs()).unwrap();
    obj.backward().unwrap();
    let once = grad(obj.as_ref());
    obj.forward(&batch.inputs()).unwrap();
    obj.backward().unwrap();
    for (a, b) in grad(obj.as_ref()).iter().zip(&once) {
        assert!(
            (a - 2.0 * b).abs() <= 1e-12 * b.abs().max(1.0),
            "{a} vs 2·{b}"
        );
    }
    obj.zero_grad().unwrap();
    assert!(grad(obj.as_ref()).iter().all(|&g| g == 0.0));

    // The factory's f32 gate with f32 model outputs.
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    let (logits, pooled, targets, prior) = (
        f32(&batch.logits),
        f32(&batch.pooled),
        f32(&batch.targets),
        f32(&batch.prior),
    );
    let inputs = LossInputs {
        logits: &logits,
        pooled: &pooled,
        targets: &targets,
        prior: &prior,
        top_answers: &batch.top,
    };
    for kind in DEBIAS {
        let mut o = build_objective(kind, 3, 1).unwrap();
        let l = o.forward(&inputs).unwrap();
        let g = o.backward().unwrap();
        assert!(l.is_finite(), "{kind}");
        assert_eq!(g.dlogits.dtype(), DType::F32, "{kind}");
        assert!(
            g.dlogits.to_vec_f64().iter().all(|v| v.is_finite()),
            "{kind}"
        );
        if let Some(dp) = g.dpooled {
            assert_eq!((dp.dtype(), dp.dims()), (DType::F32, &[4usize, 3][..]));
        }
    }
}

/// ln Σ e^v.
fn lse(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// CE of each row of `x` on its top answer (0 for rows without one), naively.
fn naive_ce(x: &[f64], a: usize, top: &[Option<usize>]) -> Vec<f64> {
    x.chunks(a)
        .zip(top)
        .map(|(row, t)| t.map_or(0.0, |t| lse(row) - row[t]))
        .collect()
}

#[test]
fn ce_rubi_and_lpf_values_match_naive_formulas() {
    for (s, shape) in SHAPES.into_iter().enumerate() {
        let batch = Batch::random(shape, 400 + s as u64);
        let [b, a] = batch.dims();
        let x = batch.logits.to_vec_f64();
        let p = batch.prior.to_vec_f64();
        let ce = naive_ce(&x, a, &batch.top);
        let want_ce = ce.iter().sum::<f64>() / b as f64;
        let want_lpf = ce
            .iter()
            .zip(&batch.top)
            .enumerate()
            .map(|(r, (l, t))| t.map_or(0.0, |t| (1.0 - p[r * a + t]).powi(5) * l))
            .sum::<f64>()
            / b as f64;
        let masked: Vec<f64> = x
            .iter()
            .zip(&p)
            .map(|(x, p)| x / (1.0 + (-p).exp()))
            .collect();
        let want_rubi = naive_ce(&masked, a, &batch.top).iter().sum::<f64>() / b as f64;
        for (kind, want) in [
            (LossKind::Ce, want_ce),
            (LossKind::Lpf, want_lpf),
            (LossKind::Rubi, want_rubi),
        ] {
            let got = loss_of(kind, shape[2], &batch.inputs());
            assert!(
                (got - want).abs() < 1e-12,
                "{kind} {shape:?}: {got} vs {want}"
            );
        }
    }
    assert_eq!(LPF_GAMMA, 5.0);
}

#[test]
fn lpf_weight_by_hand() {
    // One example, prior 0.5 on its top answer: weight 0.5^5 = 1/32 of the CE.
    let logits = Tensor::from_vec(vec![1.0f64, 2.0, 0.5], [1, 3]).unwrap();
    let prior = Tensor::from_vec(vec![0.2f64, 0.5, 0.3], [1, 3]).unwrap();
    let targets = Tensor::from_vec(vec![0.0f64, 1.0, 0.3], [1, 3]).unwrap();
    let pooled = Tensor::zeros([1, 2], DType::F64);
    let inputs = LossInputs {
        logits: &logits,
        pooled: &pooled,
        targets: &targets,
        prior: &prior,
        top_answers: &[Some(1)],
    };
    let ce = lse(&[1.0, 2.0, 0.5]) - 2.0;
    let got = loss_of(LossKind::Lpf, 2, &inputs);
    assert!((got - ce / 32.0).abs() < 1e-15, "{got} vs {}", ce / 32.0);
}

#[test]
fn poe_values_match_naive_formula_and_uniform_prior_gives_soft_ce() {
    for (s, shape) in SHAPES.into_iter().enumerate() {
        let batch = Batch::random(shape, 500 + s as u64);
        let [b, a] = batch.dims();
        let x = batch.logits.to_vec_f64();
        let t = batch.targets.to_vec_f64();
        let p = batch.prior.to_vec_f64();
        // −Σ t · log(p_m · p_b / Σ p_m · p_b) with p_m = softmax(x), computed as products.
        let mut want = 0.0;
        for r in 0..b {
            let row = r * a..(r + 1) * a;
            let z_m: f64 = x[row.clone()].iter().map(|v| v.exp()).sum();
            let prod: Vec<f64> = row.clone().map(|i| x[i].exp() / z_m * p[i]).collect();
            let z: f64 = prod.iter().sum();
            want -= row
                .zip(&prod)
                .map(|(i, q)| t[i] * (q / z).ln())
                .sum::<f64>();
        }
        want /= b as f64;
        let got = loss_of(LossKind::Poe, shape[2], &batch.inputs());
        assert!((got - want).abs() < 1e-12, "poe {shape:?}: {got} vs {want}");

        // A uniform prior cancels in the renormalisation: soft-target CE of the logits.
        let uniform = Tensor::full([b, a], 1.0 / a as f64, DType::F64);
        let soft_ce: f64 = x
            .chunks(a)
            .zip(t.chunks(a))
            .map(|(xr, tr)| {
                xr.iter()
                    .zip(tr)
                    .map(|(x, t)| t * (lse(xr) - x))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / b as f64;
        let got = loss_of(
            LossKind::Poe,
            shape[2],
            &LossInputs {
                prior: &uniform,
                ..batch.inputs()
            },
        );
        assert!(
            (got - soft_ce).abs() < 1e-12,
            "poe uniform {shape:?}: {got} vs {soft_ce}"
        );
    }
}

/// LMH written out literally: per answer, the two-outcome log-probabilities of the main
/// model and of the scaled, smoothed prior (`p + s`, `1 − p + s`), added and renormalised by a log-sum-exp over
/// the pair; plus w_H × the mean entropy of softmax(g · bias pair).
fn naive_lmh(batch: &Batch, w: &[f64], bias: f64) -> f64 {
    let [b, a] = batch.dims();
    let h = batch.pooled.dims()[1];
    let (x, t, p, pooled) = (
        batch.logits.to_vec_f64(),
        batch.targets.to_vec_f64(),
        batch.prior.to_vec_f64(),
        batch.pooled.to_vec_f64(),
    );
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (mut main, mut entropy) = (0.0, 0.0);
    for r in 0..b {
        let z: f64 = (0..h).map(|k| w[k] * pooled[r * h + k]).sum::<f64>() + bias;
        let g = (1.0 + z.exp()).ln();
        for c in 0..a {
            let i = r * a + c;
            let bias_pair = [
                g * (p[i] + LMH_SMOOTHING).ln(),
                g * (1.0 - p[i] + LMH_SMOOTHING).ln(),
            ];
            let comb = [
                sig(x[i]).ln() + bias_pair[0],
                sig(-x[i]).ln() + bias_pair[1],
            ];
            let norm = lse(&comb);
            main -= t[i] * (comb[0] - norm) + (1.0 - t[i]) * (comb[1] - norm);
            let bnorm = lse(&bias_pair);
            entropy -= bias_pair
                .iter()
                .map(|v| (v - bnorm).exp() * (v - bnorm))
                .sum::<f64>();
        }
    }
    main / b as f64 + LMH_ENTROPY_WEIGHT * entropy / (b * a) as f64
}

#[test]
fn lmh_value_matches_naive_formula() {
    assert_eq!(LMH_ENTROPY_WEIGHT, 0.36);
    for (s, shape) in SHAPES.into_iter().enumerate() {
        let mut batch = Batch::random(shape, 600 + s as u64);
        // Include a prior of exactly 0 and 1 (finite thanks to the smoothing).
        let mut p = batch.prior.to_vec_f64();
        p[0] = 0.0;
        *p.last_mut().unwrap() = 1.0;
        batch.prior = with_values(&batch.prior, &p);
        let obj = objective(LossKind::Lmh, shape[2]);
        let mut values = Vec::new();
        obj.visit_params(&mut |p| values.push(p.value.to_vec_f64()));
        let want = naive_lmh(&batch, &values[0], values[1][0]);
        let got = loss_of(LossKind::Lmh, shape[2], &batch.inputs());
        assert!(
            (got - want).abs() < 1e-10 * want.abs().max(1.0),
            "{shape:?}: {got} vs {want}"
        );
    }
}

#[test]
fn lmh_pushes_less_on_examples_the_prior_explains_than_bce() {
    // Targets are one answer per example, and the prior puts 0.95 on exactly that answer.
    let (b, a, h) = (6, 8, 4);
    let mut t = vec![0.0; b * a];
    let mut p = vec![0.05 / (a - 1) as f64; b * a];
    for r in 0..b {
        t[r * a + (r * 3) % a] = 1.0;
        p[r * a + (r * 3) % a] = 0.95;
    }
    let batch = Batch {
        logits: Tensor::zeros([b, a], DType::F64),
        pooled: randn(&[b, h], 9),
        targets: Tensor::from_vec(t, [b, a]).unwrap(),
        prior: Tensor::from_vec(p, [b, a]).unwrap(),
        top: (0..b).map(|r| Some((r * 3) % a)).collect(),
    };
    let norm = |kind| {
        let mut o = build_objective(kind, h, 3).unwrap();
        o.to_dtype(DType::F64);
        o.forward(&batch.inputs()).unwrap();
        let g = o.backward().unwrap().dlogits.to_vec_f64();
        g.iter().map(|v| v * v).sum::<f64>().sqrt()
    };
    let (lmh, bce) = (norm(LossKind::Lmh), norm(LossKind::Bce));
    // At the initial gate (g ≈ softplus(0)) and with the smoothing, LMH's push is ≈ 0.53× BCE's.
    assert!(lmh < 0.6 * bce, "lmh |dlogits| {lmh} vs bce {bce}");
}

/// Runs `kind` on `batch` and returns the error message.
fn error_of(kind: LossKind, inputs: &LossInputs, h: usize) -> String {
    objective(kind, h).forward(inputs).unwrap_err().to_string()
}

#[test]
fn bad_inputs_are_errors_naming_the_tensor() {
    let batch = Batch::random([3, 4, 2], 700);
    let reads_prior = [LossKind::Lmh, LossKind::Poe, LossKind::Rubi, LossKind::Lpf];
    let reads_top = [LossKind::Ce, LossKind::Rubi, LossKind::Lpf];
    let reads_targets = [LossKind::Lmh, LossKind::Poe];
    let wrong = Tensor::zeros([3, 5], DType::F64);
    for kind in DEBIAS {
        let name = kind.name();
        let e = error_of(
            kind,
            &LossInputs {
                logits: &Tensor::zeros([12], DType::F64),
                ..batch.inputs()
            },
            2,
        );
        assert!(e.contains(name), "{e}");
        let e = error_of(
            kind,
            &LossInputs {
                logits: &Tensor::zeros([0, 4], DType::F64),
                ..batch.inputs()
            },
            2,
        );
        assert!(e.contains("logits"), "{e}");
        if reads_prior.contains(&kind) {
            let e = error_of(
                kind,
                &LossInputs {
                    prior: &wrong,
                    ..batch.inputs()
                },
                2,
            );
            assert!(e.contains("prior") && e.contains(name), "{e}");
            let p = Tensor::full([3, 4], 1.5, DType::F64);
            let e = error_of(
                kind,
                &LossInputs {
                    prior: &p,
                    ..batch.inputs()
                },
                2,
            );
            assert!(
                e.contains("prior[0, 0]") && e.contains("outside [0, 1]"),
                "{e}"
            );
        }
        if reads_targets.contains(&kind) {
            let e = error_of(
                kind,
                &LossInputs {
                    targets: &wrong,
                    ..batch.inputs()
                },
                2,
            );
            assert!(e.contains("targets") && e.contains(name), "{e}");
            let t = Tensor::full([3, 4], -0.5, DType::F64);
            let e = error_of(
                kind,
                &LossInputs {
                    targets: &t,
                    ..batch.inputs()
                },
                2,
            );
            assert!(e.contains("targets[0, 0]"), "{e}");
        }
        if reads_top.contains(&kind) {
            let e = error_of(
                kind,
                &LossInputs {
                    top_answers: &[Some(0), None],
                    ..batch.inputs()
                },
                2,
            );
            assert!(e.contains("top_answers has 2 entries"), "{e}");
            let e = error_of(
                kind,
                &LossInputs {
                    top_answers: &[Some(0), None, Some(4)],
                    ..batch.inputs()
                },
                2,
            );
            assert!(
                e.contains("top_answers[2] = 4") && e.contains("4 answers"),
                "{e}"
            );
        }
        let mut fresh = objective(kind, 2);
        let e = fresh.backward().unwrap_err().to_string();
        assert!(e.contains("backward without a forward"), "{e}");
    }
    // LMH also reads the pooled representation.
    let e = error_of(
        LossKind::Lmh,
        &LossInputs {
            pooled: &Tensor::zeros([2, 2], DType::F64),
            ..batch.inputs()
        },
        2,
    );
    assert!(e.contains("pooled") && e.contains("B = 3"), "{e}");
    let e = error_of(
        LossKind::Lmh,
        &LossInputs {
            pooled: &Tensor::zeros([3, 5], DType::F64),
            ..batch.inputs()
        },
        2,
    );
    assert!(
        e.contains("pooled has 5 features") && e.contains("lmh.gate"),
        "{e}"
    );
    let e = build_objective(LossKind::Lmh, 0, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lmh"), "{e}");
}

#[test]
fn loss_kind_parses_what_it_prints() {
    for kind in LossKind::ALL {
        assert_eq!(kind.name().parse::<LossKind>().unwrap(), kind);
        assert_eq!(kind.to_string().parse::<LossKind>().unwrap(), kind);
        assert_eq!(
            kind.name().to_uppercase().parse::<LossKind>().unwrap(),
            kind
        );
        let obj = build_objective(kind, 4, 0).unwrap();
        assert_eq!(obj.kind(), kind);
        let expected = if kind == LossKind::Lmh { 5 } else { 0 };
        assert_eq!(obj.num_params(), expected, "{kind}");
    }
    let e = "focal".parse::<LossKind>().unwrap_err().to_string();
    assert!(
        e.contains("focal") && e.contains("bce, ce, lmh, poe, rubi, lpf"),
        "{e}"
    );
}
