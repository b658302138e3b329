//! Sparse linear layers and block-sparse attention on the GPU (kernels/bsr_tc.cu,
//! csr_spmm.cu, csr_sddmm.cu, sparse_layout.cu, block_sparse_attention.cu), on a CUDA
//! device or the emulator.
//!
//! [`GpuSparseLinear`] uploads a [`crate::sparse::SparseMatrix`] W `[rows, cols]` and runs
//! `Y = X·Wᵀ`, `dX = dY·W` and the weight gradient at the stored entries only. Per format:
//!
//! - **BSR** (blocks of 16 or 32): tensor cores, bf16 weights and activations, f32
//!   accumulation and outputs ([`bsr`]); blocks of 8 are refused.
//! - **CSR**: Sputnik-style SpMM and SDDMM in f32 ([`csr`]), activations transposed on the
//!   device so that tokens are contiguous.
//! - **2:4**: a dense fallback, not `mma.sp`: the matrix is expanded to dense bf16 at
//!   upload and runs on the dense tensor-core GEMM; the weight gradient is the dense
//!   product gathered at the 2:4 slots ([`nm24`]).
//!
//! The buffer-level launchers live in the submodules; [`layout`] holds the transposes and
//! casts they share.
//!
//! Block-sparse attention (kernels/block_sparse_attention.cu): [`attention`] launches the
//! flash-style forward and backward over the active blocks of a layout uploaded once as
//! a [`GpuBlockLayout`] ([`attention_layout`]).

pub mod attention;
pub mod attention_layout;
pub mod bsr;
pub mod csr;
pub mod layout;
mod linear;
pub mod nm24;

pub use attention_layout::GpuBlockLayout;
pub use linear::GpuSparseLinear;
