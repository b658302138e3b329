//! Dropout as a layer: seeded masks that the backward pass regenerates instead of storing.

use super::cache::Cache;
use super::mode::Mode;
use crate::error::Result;
use crate::ops::dropout::{dropout, dropout_backward};
use crate::tensor::Tensor;

/// Dropout with probability `p` at a named site (the name seeds its masks).
#[derive(Debug, Clone)]
pub struct Dropout {
    /// Drop probability in [0, 1).
    pub p: f64,
    site: String,
    cache: Cache<Option<u64>>,
}

impl Dropout {
    /// Dropout at site `site` with probability `p`.
    pub fn new(site: &str, p: f64) -> Self {
        Dropout {
            p,
            site: site.to_string(),
            cache: Cache::new(site),
        }
    }

    /// The seed for the next training call, or None when dropout is inactive.
    fn seed(&self, mode: Mode) -> Option<u64> {
        if self.p > 0.0 {
            mode.dropout_seed(&self.site, self.cache.len())
        } else {
            None
        }
    }

    /// Applies dropout in training mode; identity in eval mode or when p = 0.
    pub fn forward(&mut self, x: Tensor, mode: Mode) -> Result<Tensor> {
        let seed = self.seed(mode);
        if mode.is_train() {
            self.cache.push(seed);
        }
        match seed {
            Some(s) => dropout(&x, self.p, s),
            None => Ok(x),
        }
    }

    /// Back-propagates through the mask of the matching forward call.
    pub fn backward(&mut self, dy: Tensor) -> Result<Tensor> {
        match self.cache.pop()? {
            Some(s) => dropout_backward(&dy, self.p, s),
            None => Ok(dy),
        }
    }
}
