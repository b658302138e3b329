//! The stack in which a layer keeps what its backward pass needs.

use crate::error::{Error, Result};

/// Saved activations, one entry per training forward call.
///
/// A stack (not a single slot) so that a layer used twice in one forward pass — LXMERT's
/// cross-attention serves both directions with one set of weights — gets one backward
/// per forward, in reverse order.
#[derive(Debug, Clone)]
pub struct Cache<T> {
    layer: String,
    entries: Vec<T>,
}

impl<T> Cache<T> {
    /// An empty cache for the layer named `layer` (used in error messages).
    pub fn new(layer: impl Into<String>) -> Self {
        Cache {
            layer: layer.into(),
            entries: Vec::new(),
        }
    }

    /// Saves the state of one forward call.
    pub fn push(&mut self, entry: T) {
        self.entries.push(entry);
    }

    /// Takes the state of the latest forward call not yet back-propagated.
    pub fn pop(&mut self) -> Result<T> {
        self.entries.pop().ok_or_else(|| {
            Error::invalid(format!(
                "{}: backward called without a matching training-mode forward",
                self.layer
            ))
        })
    }

    /// Number of forward calls waiting for their backward.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no forward call is waiting for its backward.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops everything saved (e.g. after an aborted step).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
