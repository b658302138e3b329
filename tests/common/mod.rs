//! Shared helpers for the gradient-check tests: random f64 tensors and a finite-difference
//! check of a layer's input and parameter gradients.

#![allow(dead_code)]

pub mod gpu;
pub mod synth;
pub mod tiny;

use sparsevlp::gradcheck::{check_gradient, dot, GradCheckConfig};
use sparsevlp::nn::{Mode, Module};
use sparsevlp::{DType, Tensor};
use std::process::{Command, Output};

/// The training mode every check runs in (dropout masks are reproducible from it).
pub const MODE: Mode = Mode::Train { seed: 99 };

/// A random f64 tensor N(0, 1).
pub fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims, 1.0, seed, DType::F64)
}

/// The same tensor with its elements replaced.
pub fn with_values(t: &Tensor, values: &[f64]) -> Tensor {
    Tensor::from_vec(values.to_vec(), t.shape().clone()).unwrap()
}

/// Σ_i dot(outs_i, dirs_i): the scalar loss whose gradient the backward receives as `dirs`.
pub fn projected(outs: &[Tensor], dirs: &[Tensor]) -> f64 {
    outs.iter()
        .zip(dirs)
        .map(|(o, r)| dot(&o.to_vec_f64(), &r.to_vec_f64()))
        .sum()
}

/// dot(out, dir) for a single output.
pub fn project1(out: &Tensor, dir: &Tensor) -> f64 {
    dot(&out.to_vec_f64(), &dir.to_vec_f64())
}

/// Checks a layer's backward against central differences, for every input and every
/// parameter.
///
/// `forward(layer, inputs)` runs a training forward and returns the outputs;
/// `backward(layer, douts)` returns one gradient per input (None for inputs without one,
/// such as masks). Each finite-difference evaluation uses a fresh clone of `layer`, so
/// dropout masks are identical to the analytic pass. Parameters are sampled at most
/// `max_param_entries` entries each.
pub fn check_layer<L: Module + Clone>(
    name: &str,
    layer: &L,
    inputs: &[Tensor],
    forward: impl Fn(&mut L, &[Tensor]) -> Vec<Tensor>,
    backward: impl Fn(&mut L, &[Tensor]) -> Vec<Option<Tensor>>,
    max_param_entries: usize,
) {
    let mut analytic = layer.clone();
    let outs = forward(&mut analytic, inputs);
    let dirs: Vec<Tensor> = outs
        .iter()
        .enumerate()
        .map(|(i, o)| randn(o.dims(), 1000 + i as u64))
        .collect();
    let dins = backward(&mut analytic, &dirs);
    assert_eq!(dins.len(), inputs.len(), "{name}: one gradient per input");
    let cfg = GradCheckConfig::default();
    for (i, din) in dins.iter().enumerate() {
        let Some(din) = din else { continue };
        let x = inputs[i].to_vec_f64();
        let loss = |v: &[f64]| {
            let mut ins = inputs.to_vec();
            ins[i] = with_values(&inputs[i], v);
            projected(&forward(&mut layer.clone(), &ins), &dirs)
        };
        check_gradient(
            &format!("{name}: input {i}"),
            &x,
            &din.to_vec_f64(),
            loss,
            cfg,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut grads = Vec::new();
    analytic.visit_params(&mut |p| grads.push((p.name.clone(), p.grad.to_vec_f64())));
    let mut values = Vec::new();
    layer.visit_params(&mut |p| values.push(p.value.clone()));
    assert!(!grads.is_empty() || values.is_empty());
    for (k, (pname, grad)) in grads.iter().enumerate() {
        let x = values[k].to_vec_f64();
        let loss = |v: &[f64]| {
            let mut l = layer.clone();
            let mut idx = 0;
            l.visit_params_mut(&mut |p| {
                if idx == k {
                    p.value = with_values(&p.value, v);
                }
                idx += 1;
            });
            projected(&forward(&mut l, inputs), &dirs)
        };
        let cfg = GradCheckConfig {
            max_entries: max_param_entries,
            ..cfg
        };
        check_gradient(&format!("{name}: {pname}"), &x, grad, loss, cfg)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Runs the `sparsevlp` binary with `args` and returns its output.
pub fn sparsevlp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsevlp"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs the binary, asserts it succeeded (printing its stderr otherwise) and returns its
/// stdout.
pub fn sparsevlp_ok(args: &[&str]) -> String {
    let out = sparsevlp(args);
    assert!(
        out.status.success(),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the binary, asserts it failed and returns its stderr.
pub fn sparsevlp_fails(args: &[&str]) -> String {
    let out = sparsevlp(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as a command-line argument.
pub fn arg(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A `[rows, cols]` 1/0 mask whose row r keeps its first `keep[r]` entries.
pub fn prefix_mask(cols: usize, keep: &[usize], dtype: DType) -> Tensor {
    let v: Vec<f64> = keep
        .iter()
        .flat_map(|&k| (0..cols).map(move |j| if j < k { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_vec(v, [keep.len(), cols])
        .unwrap()
        .to_dtype(dtype)
}

/// Finite-difference check of an attention op's `(dQ, dK, dV)` for the loss ⟨run(q, k, v),
/// `dout`⟩, named `name` in failures.
pub fn check_qkv_gradients(
    name: &str,
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    (dq, dk, dv): (&Tensor, &Tensor, &Tensor),
    dout: &Tensor,
    run: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
) {
    let cfg = GradCheckConfig::default();
    let loss = |o: Tensor| project1(&o, dout);
    let checks: [(&str, &Tensor, &Tensor); 3] = [("dQ", q, dq), ("dK", k, dk), ("dV", v, dv)];
    for (which, (grad_name, input, grad)) in checks.into_iter().enumerate() {
        check_gradient(
            &format!("{name} {grad_name}"),
            &input.to_vec_f64(),
            &grad.to_vec_f64(),
            |x| {
                let mut t = [q.clone(), k.clone(), v.clone()];
                t[which] = with_values(input, x);
                loss(run(&t[0], &t[1], &t[2]))
            },
            cfg,
        )
        .unwrap();
    }
}
