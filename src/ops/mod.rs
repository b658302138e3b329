//! Tensor ops with explicit forward and backward passes.
//!
//! Each op is a pair of functions: the forward, and a backward that takes the output
//! gradient (plus whatever the forward returned for it) and returns input gradients;
//! parameter gradients are accumulated into `&mut Tensor` buffers so layers never allocate
//! a gradient twice. On the CPU every op computes in f32 (production) or f64 (gradient
//! checks); bf16/f16 are storage types and are refused with a clear error.

pub mod adamw;
pub mod attention;
pub mod block_sparse_attention;
pub mod cpu;
pub mod dropout;
pub mod elementwise;
pub mod embedding;
pub mod gemm;
pub mod layernorm;
pub mod loss;
pub mod matmul;
pub mod mixed;
pub mod softmax;
pub mod sparse_linear;
pub mod tokens;
