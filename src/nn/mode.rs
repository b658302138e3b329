//! Whether a forward pass trains (keeps activations, applies dropout) or only evaluates.

use crate::rng::{mix64, seed_for};

/// The mode of a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inference: no dropout, nothing kept for a backward pass.
    Eval,
    /// Training: layers keep what their backward needs and dropout is active; every
    /// dropout mask derives from `seed`, the site's name and the call count, so a step is
    /// reproducible from its seed.
    Train {
        /// The step's seed.
        seed: u64,
    },
}

impl Mode {
    /// True in training mode.
    pub fn is_train(self) -> bool {
        matches!(self, Mode::Train { .. })
    }

    /// The dropout seed for the `call`-th use of the dropout site `site` (None in eval).
    pub fn dropout_seed(self, site: &str, call: usize) -> Option<u64> {
        match self {
            Mode::Eval => None,
            Mode::Train { seed } => Some(mix64(seed_for(seed, site) ^ call as u64)),
        }
    }
}
