//! cuBLAS through cudarc, loaded at run time: the vendor dense GEMM the GPU kernels are
//! measured against (`sparsevlp bench sparse --device cuda`, `cargo bench --bench
//! gpu_dense`). It runs on its own stream of the device's primary context, with operands
//! it uploads itself; a machine without libcublas, or without the device, gets an error
//! that says so (the emulator has no cuBLAS).
//!
//! Products follow this crate's row-major [`Gemm`] contract, `C[M, N] = op(A)·op(B)` with
//! f32 output and f32 accumulation. cuBLAS is column-major, where a row-major `X` reads as
//! `Xᵀ`, so the call computes `Cᵀ = op(B)ᵀ·op(A)ᵀ`: B goes first, and each operand is
//! transposed in the call exactly when it is stored transposed (see [`Cublas::gemm`]).

use std::sync::Arc;

use cudarc::cublas::{result as blas, sys, CudaBlas};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr};
use half::bf16;

use super::dense::gemm::Gemm;
use crate::error::{Error, Result};

/// An element type cuBLAS multiplies here (f32 or bf16 inputs, f32 output).
pub trait BlasInput: DeviceRepr {
    /// The cuBLAS data type of the element.
    const DATA_TYPE: sys::cudaDataType_t;
}

impl BlasInput for f32 {
    const DATA_TYPE: sys::cudaDataType_t = sys::cudaDataType_t::CUDA_R_32F;
}

impl BlasInput for bf16 {
    const DATA_TYPE: sys::cudaDataType_t = sys::cudaDataType_t::CUDA_R_16BF;
}

/// A cuBLAS handle on its own stream of one CUDA device.
pub struct Cublas {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
}

/// A cudarc error as this crate's error, naming what failed.
fn cuda_error<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::invalid(format!("cuBLAS: {what}: {e}"))
}

impl Cublas {
    /// Opens cuBLAS on CUDA device `ordinal`; an error when libcublas is not installed or
    /// the device cannot be opened.
    pub fn new(ordinal: usize) -> Result<Cublas> {
        // SAFETY: only probes whether the shared library can be loaded.
        if !unsafe { sys::is_culib_present() } {
            return Err(Error::invalid(
                "cuBLAS (libcublas) is not installed: no vendor baseline",
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(cuda_error("opening the device"))?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(cuda_error("creating the handle"))?;
        Ok(Cublas { stream, blas })
    }

    /// Copies `host` to the device.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream.clone_htod(host).map_err(cuda_error("upload"))
    }

    /// `n` zeroed f32 elements on the device.
    pub fn zeros_f32(&self, n: usize) -> Result<CudaSlice<f32>> {
        self.stream
            .alloc_zeros::<f32>(n)
            .map_err(cuda_error("allocation"))
    }

    /// Waits for the stream.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(cuda_error("synchronize"))
    }

    /// `C = op(A)·op(B)` as [`Gemm`] describes (one product, f32 output and compute),
    /// through `cublasGemmEx`. In column-major terms the stored row-major operands are
    /// `Aᵀ`, `Bᵀ` and `Cᵀ`, so it computes `Cᵀ [N, M] = op(B)ᵀ·op(A)ᵀ` with `m = N`,
    /// `n = M`: B is the first operand, transposed iff it is stored transposed (`tb`),
    /// A the second, transposed iff `ta`; the leading dimensions are the row strides.
    pub fn gemm<T: BlasInput>(
        &self,
        g: &Gemm,
        a: &CudaSlice<T>,
        b: &CudaSlice<T>,
        c: &mut CudaSlice<f32>,
    ) -> Result<()> {
        const OP: &str = "cublas gemm";
        if g.batch != 1 {
            return Err(Error::invalid(format!(
                "{OP}: batched products are not wrapped (batch {})",
                g.batch
            )));
        }
        let stored = |t: bool, rows: usize, cols: usize, ld: usize| {
            let (r, c) = if t { (cols, rows) } else { (rows, cols) };
            if r == 0 {
                0
            } else {
                (r - 1) * ld + c
            }
        };
        let need_a = stored(g.ta, g.m, g.k, g.lda);
        let need_b = stored(g.tb, g.k, g.n, g.ldb);
        let need_c = stored(false, g.m, g.n, g.ldc);
        for (what, have, need) in [
            ("A", a.len(), need_a),
            ("B", b.len(), need_b),
            ("C", c.len(), need_c),
        ] {
            if have < need {
                return Err(Error::shape(
                    OP,
                    format!("operand {what} holds {have} elements, the product needs {need}"),
                ));
            }
        }
        let int = |what: &str, v: usize| {
            i32::try_from(v).map_err(|_| Error::invalid(format!("{OP}: {what} {v} exceeds i32")))
        };
        let op = |t: bool| {
            if t {
                sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (pa, _ra) = a.device_ptr(&self.stream);
        let (pb, _rb) = b.device_ptr(&self.stream);
        let (pc, _rc) = c.device_ptr_mut(&self.stream);
        // SAFETY: the slices hold at least the elements the sizes and leading dimensions
        // address (checked above); alpha and beta outlive the call.
        unsafe {
            blas::gemm_ex(
                *self.blas.handle(),
                op(g.tb),
                op(g.ta),
                int("N", g.n)?,
                int("M", g.m)?,
                int("K", g.k)?,
                (&alpha) as *const f32 as *const _,
                pb as *const _,
                T::DATA_TYPE,
                int("ldb", g.ldb)?,
                pa as *const _,
                T::DATA_TYPE,
                int("lda", g.lda)?,
                (&beta) as *const f32 as *const _,
                pc as *mut _,
                sys::cudaDataType_t::CUDA_R_32F,
                int("ldc", g.ldc)?,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(cuda_error("cublasGemmEx"))
    }
}
