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
        let (m, v) = self.moments.entry(p.name.clone()).or_insert_with(|| {
            let zeros = Tensor::zeros(p.value.shape().clone(), p.value.dtype());
            (zeros.clone(), zeros)
        });
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
