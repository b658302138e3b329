//! The training optimizer: AdamW ([`adamw_step`]) over any set of [`Module`]s, with the
//! [`Schedule`]'s learning rate, global-norm gradient clipping, a learning-rate multiplier
//! per parameter (groups: e.g. the answer head at a higher rate), a frozen set (no
//! update, no moment buffers) and a saved/loaded state.
//!
//! Weight decay applies to matrices only (rank ≥ 2): biases, LayerNorm gains and shifts
//! are not decayed, as in BERT-style fine-tuning. Every step first checks the gradients:
//! a NaN or infinite gradient is an error naming the step and the parameter, and no
//! parameter is changed. The update visits parameters in the modules' stable order and
//! each AdamW update is element-wise, so a step is deterministic for a fixed thread count
//! (the global norm is summed in f64 in that same order).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::schedule::Schedule;
use crate::checkpoint::{load_tensors, save_tensors};
use crate::data::files::{read_json, write_json};
use crate::error::{Error, Result};
use crate::nn::{Module, Param};
use crate::ops::adamw::{adamw_step, AdamWConfig};
use crate::ops::elementwise::scale;
use crate::tensor::{DType, Tensor};

/// The file of the moment buffers inside a state directory.
pub const MOMENTS_FILE: &str = "optimizer.safetensors";
/// The file of the step count and hyper-parameters inside a state directory.
pub const OPTIMIZER_FILE: &str = "optimizer.json";

/// The optimizer's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// The learning-rate schedule (peak rate, warm-up, total steps).
    pub schedule: Schedule,
    /// AdamW β1.
    pub beta1: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Decoupled weight decay of matrices.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub clip_norm: Option<f64>,
}

impl OptimConfig {
    /// AdamW (β 0.9/0.999, ε 1e-8, weight decay 0.01) with clipping at norm 1.0 on
    /// `schedule`.
    pub fn new(schedule: Schedule) -> Self {
        OptimConfig {
            schedule,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            clip_norm: Some(1.0),
        }
    }

    /// Fails unless the AdamW hyper-parameters are in range and the clip norm is
    /// positive; the message names the option.
    pub fn validate(&self) -> Result<()> {
        AdamWConfig {
            lr: self.schedule.peak,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
        .validate()?;
        match self.clip_norm {
            Some(c) if !(c.is_finite() && c > 0.0) => Err(Error::invalid(format!(
                "gradient clip norm {c} must be positive and finite"
            ))),
            _ => Ok(()),
        }
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The 1-based step number.
    pub step: u64,
    /// The scheduled (base) learning rate of the step.
    pub lr: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
}

/// AdamW with schedule, clipping, groups and a frozen set.
#[derive(Debug, Clone)]
pub struct Optimizer {
    /// The hyper-parameters.
    pub config: OptimConfig,
    /// Parameters (by name) that receive no update and have no moment buffers.
    frozen: BTreeSet<String>,
    /// Optimizer steps taken so far.
    step: u64,
    /// First and second moments per parameter name.
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

/// The step count and hyper-parameters as saved beside the moments.
#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    step: u64,
    config: OptimConfig,
    frozen: BTreeSet<String>,
}

impl Optimizer {
    /// A fresh optimizer (step 0, no moments) that leaves the `frozen` parameters alone.
    pub fn new(config: OptimConfig, frozen: BTreeSet<String>) -> Self {
        Optimizer {
            config,
            frozen,
            step: 0,
            moments: BTreeMap::new(),
        }
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The frozen parameter names.
    pub fn frozen(&self) -> &BTreeSet<String> {
        &self.frozen
    }

    /// Replaces the frozen set; newly frozen parameters lose their moment buffers.
    pub fn set_frozen(&mut self, frozen: BTreeSet<String>) {
        self.moments.retain(|name, _| !frozen.contains(name));
        self.frozen = frozen;
    }

    /// The names of the parameters that have moment buffers.
    pub fn moment_names(&self) -> Vec<String> {
        self.moments.keys().cloned().collect()
    }

    /// The first and second moments of a parameter, when it has been updated.
    pub fn moments(&self, name: &str) -> Option<(&Tensor, &Tensor)> {
        self.moments.get(name).map(|(m, v)| (m, v))
    }

    /// The global L2 norm of the gradients of every trainable parameter of `modules`,
    /// summed in f64 in visiting order; an error names the first parameter with a NaN or
    /// infinite gradient, and `step`.
    pub fn grad_norm(&self, modules: &[&dyn Module], step: u64) -> Result<f64> {
        let mut sum = 0.0f64;
        let mut bad: Option<String> = None;
        for module in modules {
            module.visit_params(&mut |p| {
                if self.frozen.contains(&p.name) || bad.is_some() {
                    return;
                }
                let g = p.grad.to_vec_f64();
                if g.iter().any(|x| !x.is_finite()) {
                    bad = Some(p.name.clone());
                }
                sum += g.iter().map(|x| x * x).sum::<f64>();
            });
        }
        match bad {
            Some(name) => Err(Error::invalid(format!(
                "step {step}: the gradient of parameter '{name}' is not finite (NaN or Inf)"
            ))),
            None => Ok(sum.sqrt()),
        }
    }

    /// One AdamW step over every trainable parameter of `modules` from its accumulated
    /// gradient; `lr_scale(name)` multiplies the scheduled rate per parameter. Gradients
    /// are clipped to the global norm first. A non-finite gradient is an error (naming
    /// the step and parameter) that changes nothing.
    pub fn step(
        &mut self,
        modules: &mut [&mut dyn Module],
        lr_scale: &dyn Fn(&str) -> f64,
    ) -> Result<StepStats> {
        let step = self.step + 1;
        let views: Vec<&dyn Module> = modules.iter().map(|m| &**m as &dyn Module).collect();
        let grad_norm = self.grad_norm(&views, step)?;
        let clip = match self.config.clip_norm {
            Some(max) if grad_norm > max => max / (grad_norm + 1e-6),
            _ => 1.0,
        };
        let lr = self.config.schedule.lr(step);
        for module in modules.iter_mut() {
            module.for_each_param(&mut |p| self.update(p, lr * lr_scale(&p.name), clip, step))?;
        }
        self.step = step;
        Ok(StepStats {
            step,
            lr,
            grad_norm,
        })
    }

    /// The AdamW update of one parameter (nothing for a frozen one).
    fn update(&mut self, p: &mut Param, lr: f64, clip: f64, step: u64) -> Result<()> {
        if self.frozen.contains(&p.name) {
            return Ok(());
        }
        let cfg = AdamWConfig {
            lr,
            beta1: self.config.beta1,
            beta2: self.config.beta2,
            eps: self.config.eps,
            weight_decay: if p.value.dims().len() >= 2 {
                self.config.weight_decay
            } else {
                0.0
            },
        };
        let device = p.value.device();
        let (m, v) = match self.moments.entry(p.name.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let zeros = Tensor::zeros_on(p.value.shape().clone(), p.value.dtype(), device)?;
                e.insert((zeros.clone(), zeros))
            }
        };
        // Moments follow their parameter (a loaded state starts on the CPU).
        if m.device() != device {
            *m = m.to_device(device)?;
            *v = v.to_device(device)?;
        }
        let grad = if clip < 1.0 {
            scale(&p.grad, clip)?
        } else {
            p.grad.clone()
        };
        adamw_step(&mut p.value, &grad, m, v, &cfg, step)
            .map_err(|e| Error::invalid(format!("parameter '{}': {e}", p.name)))
    }

    /// Writes the state into `dir`: [`OPTIMIZER_FILE`] (step, hyper-parameters, frozen
    /// set) and [`MOMENTS_FILE`] (`m.{name}` and `v.{name}` per parameter, f32), each
    /// atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut tensors = Vec::with_capacity(2 * self.moments.len());
        for (name, (m, v)) in &self.moments {
            tensors.push((format!("m.{name}"), m.clone()));
            tensors.push((format!("v.{name}"), v.clone()));
        }
        save_tensors(&dir.join(MOMENTS_FILE), &tensors, DType::F32)?;
        let saved = SavedState {
            step: self.step,
            config: self.config,
            frozen: self.frozen.clone(),
        };
        write_json(&dir.join(OPTIMIZER_FILE), &saved)
    }

    /// Reads a state [`Optimizer::save`] wrote into `dir`; the moments take `dtype`. A
    /// tensor that is no moment, or a parameter with only one moment, is an error naming
    /// the file.
    pub fn load(dir: &Path, dtype: DType) -> Result<Self> {
        let saved: SavedState = read_json(&dir.join(OPTIMIZER_FILE))?;
        let path = dir.join(MOMENTS_FILE);
        let bad = |msg: String| Error::Checkpoint {
            path: path.clone(),
            msg,
        };
        let mut firsts = BTreeMap::new();
        let mut seconds = BTreeMap::new();
        for (name, t) in load_tensors(&path)? {
            let t = t.to_dtype(dtype);
            if let Some(p) = name.strip_prefix("m.") {
                firsts.insert(p.to_string(), t);
            } else if let Some(p) = name.strip_prefix("v.") {
                seconds.insert(p.to_string(), t);
            } else {
                return Err(bad(format!(
                    "tensor '{name}' is not an optimizer moment (m.* or v.*)"
                )));
            }
        }
        let mut moments = BTreeMap::new();
        for (name, m) in firsts {
            let v = seconds
                .remove(&name)
                .ok_or_else(|| bad(format!("parameter '{name}' has m but no v")))?;
            moments.insert(name, (m, v));
        }
        if let Some(name) = seconds.keys().next() {
            return Err(bad(format!("parameter '{name}' has v but no m")));
        }
        Ok(Optimizer {
            config: saved.config,
            frozen: saved.frozen,
            step: saved.step,
            moments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module of two parameters: a `[2, 3]` matrix and a `[3]` bias.
    #[derive(Debug, Clone)]
    struct Pair(Vec<Param>);

    impl Module for Pair {
        fn visit_params(&self, f: &mut dyn FnMut(&Param)) {
            self.0.iter().for_each(f);
        }
        fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
            self.0.iter_mut().for_each(f);
        }
    }

    fn pair(seed: u64) -> Pair {
        let w = Param::new("w", Tensor::randn([2, 3], 1.0, seed, DType::F32));
        let b = Param::new("b", Tensor::randn([3], 1.0, seed + 1, DType::F32));
        Pair(vec![w, b])
    }

    fn set_grads(m: &mut Pair, seed: u64, std: f64) {
        for (i, p) in m.0.iter_mut().enumerate() {
            p.grad = Tensor::randn(p.value.shape().clone(), std, seed + i as u64, DType::F32);
        }
    }

    fn config(clip: Option<f64>) -> OptimConfig {
        OptimConfig {
            clip_norm: clip,
            ..OptimConfig::new(Schedule {
                peak: 0.1,
                warmup_steps: 1,
                total_steps: 10,
            })
        }
    }

    /// The reference: `adamw_step` on each parameter with the gradient scaled by
    /// `clip`, the rate scaled by `mult(name)`, decay on matrices only.
    fn reference(
        m: &mut Pair,
        moments: &mut Vec<(Tensor, Tensor)>,
        cfg: &OptimConfig,
        step: u64,
        clip: f64,
        mult: &dyn Fn(&str) -> f64,
    ) {
        for (i, p) in m.0.iter_mut().enumerate() {
            if moments.len() <= i {
                let z = Tensor::zeros(p.value.shape().clone(), DType::F32);
                moments.push((z.clone(), z));
            }
            let (mm, vv) = &mut moments[i];
            let adam = AdamWConfig {
                lr: cfg.schedule.lr(step) * mult(&p.name),
                beta1: cfg.beta1,
                beta2: cfg.beta2,
                eps: cfg.eps,
                weight_decay: if p.value.dims().len() >= 2 {
                    cfg.weight_decay
                } else {
                    0.0
                },
            };
            let g = scale(&p.grad, clip).unwrap();
            adamw_step(&mut p.value, &g, mm, vv, &adam, step).unwrap();
        }
    }

    fn norm(m: &Pair) -> f64 {
        let mut s = 0.0;
        m.visit_params(&mut |p| s += p.grad.to_vec_f64().iter().map(|x| x * x).sum::<f64>());
        s.sqrt()
    }

    #[test]
    fn clips_to_the_global_norm_and_scales_groups() {
        let mut ours = pair(1);
        let mut theirs = ours.clone();
        let mut opt = Optimizer::new(config(Some(1.0)), BTreeSet::new());
        let mut moments = Vec::new();
        let mult = |name: &str| if name == "b" { 3.0 } else { 1.0 };
        // A large gradient (clipped) then a small one (not clipped).
        for (step, std) in [(1, 10.0), (2, 0.01)] {
            set_grads(&mut ours, 10 * step, std);
            set_grads(&mut theirs, 10 * step, std);
            let n = norm(&ours);
            let clip = if n > 1.0 { 1.0 / (n + 1e-6) } else { 1.0 };
            let stats = opt.step(&mut [&mut ours], &mult).unwrap();
            assert_eq!(stats.step, step);
            assert!((stats.grad_norm - n).abs() < 1e-9 * n);
            assert_eq!(stats.lr, config(None).schedule.lr(step));
            reference(&mut theirs, &mut moments, &opt.config, step, clip, &mult);
            for (a, b) in ours.0.iter().zip(&theirs.0) {
                assert_eq!(a.value.to_vec_f32(), b.value.to_vec_f32(), "{}", a.name);
            }
        }
        assert_eq!(opt.steps_taken(), 2);
    }

    #[test]
    fn frozen_parameters_stay_and_have_no_moments() {
        let mut m = pair(2);
        let before = m.0[0].value.to_vec_f32();
        let mut opt = Optimizer::new(config(None), BTreeSet::from(["w".to_string()]));
        set_grads(&mut m, 5, 1.0);
        opt.step(&mut [&mut m], &|_| 1.0).unwrap();
        assert_eq!(m.0[0].value.to_vec_f32(), before);
        assert!(opt.moments("w").is_none());
        assert!(opt.moments("b").is_some());
        assert_eq!(opt.moment_names(), vec!["b".to_string()]);
    }

    #[test]
    fn a_non_finite_gradient_names_step_and_parameter_and_changes_nothing() {
        let mut m = pair(3);
        set_grads(&mut m, 7, 1.0);
        m.0[1].grad.as_mut_slice::<f32>().unwrap()[1] = f32::NAN;
        let before: Vec<Vec<f32>> = m.0.iter().map(|p| p.value.to_vec_f32()).collect();
        let mut opt = Optimizer::new(config(Some(1.0)), BTreeSet::new());
        let err = opt.step(&mut [&mut m], &|_| 1.0).unwrap_err().to_string();
        assert!(err.contains("step 1") && err.contains("'b'"), "{err}");
        let after: Vec<Vec<f32>> = m.0.iter().map(|p| p.value.to_vec_f32()).collect();
        assert_eq!(before, after);
        assert_eq!(opt.steps_taken(), 0);
    }

    #[test]
    fn state_round_trips_and_continues_identically() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = pair(4);
        let mut opt = Optimizer::new(config(Some(1.0)), BTreeSet::from(["x".to_string()]));
        for s in 0..3 {
            set_grads(&mut a, 20 + s, 1.0);
            opt.step(&mut [&mut a], &|_| 1.0).unwrap();
        }
        opt.save(dir.path()).unwrap();
        let mut loaded = Optimizer::load(dir.path(), DType::F32).unwrap();
        assert_eq!(loaded.steps_taken(), 3);
        assert_eq!(loaded.config, opt.config);
        assert_eq!(loaded.frozen(), opt.frozen());
        for name in opt.moment_names() {
            let (m1, v1) = opt.moments(&name).unwrap();
            let (m2, v2) = loaded.moments(&name).unwrap();
            assert_eq!(m1.to_vec_f32(), m2.to_vec_f32());
            assert_eq!(v1.to_vec_f32(), v2.to_vec_f32());
        }
        let mut b = a.clone();
        set_grads(&mut a, 50, 1.0);
        set_grads(&mut b, 50, 1.0);
        opt.step(&mut [&mut a], &|_| 1.0).unwrap();
        loaded.step(&mut [&mut b], &|_| 1.0).unwrap();
        for (x, y) in a.0.iter().zip(&b.0) {
            assert_eq!(x.value.to_vec_f32(), y.value.to_vec_f32());
        }
    }

    #[test]
    fn a_corrupt_moments_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let opt = Optimizer::new(config(None), BTreeSet::new());
        opt.save(dir.path()).unwrap();
        std::fs::write(dir.path().join(MOMENTS_FILE), b"not safetensors").unwrap();
        let err = Optimizer::load(dir.path(), DType::F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains(MOMENTS_FILE), "{err}");
    }
}
