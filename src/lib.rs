//! sparsevlp: a GPU-kernel-centric sparse transformer runtime for vision-language models.
//!
//! Layers: [`tensor`] (shape, dtype, CPU/GPU storage) → [`ops`] (forward/backward kernels;
//! the GPU branch runs the CUDA kernels of [`gpu`] on a CUDA device or the emulator) →
//! [`nn`] (layers with named parameters) → [`checkpoint`] (safetensors I/O). Beside them:
//! [`sparse`] (weight formats: bitmask, CSR, BSR, 2:4), [`model`] (VLP configs), [`flops`]
//! (analytic FLOP and parameter counts), [`das`] (layer-skipping search), [`data`] (VQA data pipeline and synthetic
//! dataset), [`cli`] (the `sparsevlp` binary). The [`gradcheck`] module proves every
//! backward against finite differences.

pub mod atomic_file;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod das;
pub mod data;
pub mod demo;
pub mod device;
pub mod error;
pub mod flops;
pub mod gpu;
pub mod gradcheck;
pub mod model;
pub mod nn;
pub mod ops;
pub mod progress;
pub mod prune;
pub mod report;
pub mod rng;
pub mod sparse;
pub mod tensor;
pub mod train;

pub use device::Device;
pub use error::{Error, Result};
pub use tensor::{DType, Shape, Tensor};
