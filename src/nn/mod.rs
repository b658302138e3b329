//! Layers with explicit forward and backward passes and stable parameter names.

mod module;
mod param;

pub use module::Module;
pub use param::Param;
