//! sparsevlp: a GPU-kernel-centric sparse transformer runtime for vision-language models.
//!
//! Layers: [`tensor`] (shape, dtype, device storage) → [`ops`] (forward/backward kernels)
//! → [`nn`] (layers with named parameters) → [`checkpoint`] (safetensors I/O). The
//! [`gradcheck`] module proves every backward against finite differences.

pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
pub mod error;
pub mod gpu;
pub mod gradcheck;
pub mod nn;
pub mod ops;
pub mod rng;
pub mod sparse;
pub mod tensor;

pub use device::Device;
pub use error::{Error, Result};
pub use tensor::{DType, Shape, Tensor};
