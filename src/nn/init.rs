//! Parameter initialisation: deterministic per parameter name.

use crate::rng::seed_for;
use crate::tensor::{DType, Tensor};

/// How new layers draw their weights: N(0, std²) for matrices (BERT's 0.02 by default),
/// zeros for biases, ones/zeros for LayerNorm. Each parameter's seed mixes `seed` with the
/// parameter's name, so adding a layer never changes the others' initial values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Init {
    /// Base seed.
    pub seed: u64,
    /// Standard deviation of weight matrices and embeddings.
    pub std: f64,
    /// Parameter dtype.
    pub dtype: DType,
}

impl Default for Init {
    fn default() -> Self {
        Init {
            seed: 0,
            std: 0.02,
            dtype: DType::F32,
        }
    }
}

impl Init {
    /// A normal-initialised tensor for the parameter `name`.
    pub fn normal(&self, name: &str, dims: &[usize]) -> Tensor {
        Tensor::randn(dims, self.std, seed_for(self.seed, name), self.dtype)
    }

    /// A constant tensor.
    pub fn constant(&self, dims: &[usize], value: f64) -> Tensor {
        Tensor::full(dims, value, self.dtype)
    }
}
