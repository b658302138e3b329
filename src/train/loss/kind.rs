//! The names of the objectives (`--loss bce|ce|lmh|poe|rubi|lpf`) and the factory that
//! builds one.

use std::fmt;
use std::str::FromStr;

use super::{Bce, Ce, Lmh, Lpf, Objective, Poe, Rubi};
use crate::error::{Error, Result};

/// Which training objective to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LossKind {
    /// Sigmoid binary cross-entropy with soft targets.
    Bce,
    /// Softmax cross-entropy on the top answer.
    Ce,
    /// Learned-mixin + H (Clark et al. 2019).
    Lmh,
    /// Product of experts with the bias prior.
    Poe,
    /// RUBi: CE on logits masked by σ(p_b).
    Rubi,
    /// Loss re-scaling by the prior: `(1 − p_b[top])^γ · CE`.
    Lpf,
}

impl LossKind {
    /// Every objective, in CLI order.
    pub const ALL: [LossKind; 6] = [
        LossKind::Bce,
        LossKind::Ce,
        LossKind::Lmh,
        LossKind::Poe,
        LossKind::Rubi,
        LossKind::Lpf,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Bce => "bce",
            LossKind::Ce => "ce",
            LossKind::Lmh => "lmh",
            LossKind::Poe => "poe",
            LossKind::Rubi => "rubi",
            LossKind::Lpf => "lpf",
        }
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LossKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        LossKind::ALL
            .into_iter()
            .find(|k| k.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<&str> = LossKind::ALL.iter().map(|k| k.name()).collect();
                Error::invalid(format!("unknown loss '{s}' (one of {})", names.join(", ")))
            })
    }
}

/// A fresh objective of `kind` for a model whose pooled representation has `hidden`
/// features; `seed` initialises any trainable parameters (LMH's gate, in f32; convert
/// with [`crate::nn::Module::to_dtype`] for another dtype).
pub fn build_objective(kind: LossKind, hidden: usize, seed: u64) -> Result<Box<dyn Objective>> {
    Ok(match kind {
        LossKind::Bce => Box::new(Bce::default()),
        LossKind::Ce => Box::new(Ce::default()),
        LossKind::Lmh => {
            if hidden == 0 {
                return Err(Error::invalid(
                    "lmh loss: the pooled representation must have at least one feature",
                ));
            }
            Box::new(Lmh::new(hidden, seed))
        }
        LossKind::Poe => Box::new(Poe::default()),
        LossKind::Rubi => Box::new(Rubi::default()),
        LossKind::Lpf => Box::new(Lpf::default()),
    })
}
