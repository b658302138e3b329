//! The Rust side of the CUDA emulator (kernels/emu): the C ABI of the static library that
//! build.rs compiles from kernels/*.cu and the fiber runtime, and a thin wrapper around it.
//!
//! The emulator runs the unchanged CUDA kernels on the CPU: the threads of a block are
//! fibers on the calling thread, blocks run one after another, and only one launch runs
//! at a time in the process (launches from several threads are serialised). "Device
//! memory" is host memory: pointer arguments are host addresses. Launches are synchronous.
//!
//! Between two yield points (barriers, warp collectives) a block's threads run in
//! ascending or descending thread order ([`Schedule`]); running a kernel under both and
//! comparing the results catches a missing `__syncthreads`. A divergent barrier makes the
//! launch return an error instead of hanging. kernels/emu/README.md lists the supported
//! CUDA features.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

use crate::error::{Error, Result};

unsafe extern "C" {
    fn svlp_emu_launch(
        kernel: *const c_char,
        gx: c_uint,
        gy: c_uint,
        gz: c_uint,
        bx: c_uint,
        by: c_uint,
        bz: c_uint,
        dynamic_shared_bytes: usize,
        params: *mut *mut c_void,
        descending_order: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> c_int;
    fn svlp_emu_kernel_count() -> c_int;
    fn svlp_emu_kernel_name(i: c_int) -> *const c_char;
    fn svlp_emu_kernel_params(kernel: *const c_char, sizes: *mut usize, max_sizes: c_int) -> c_int;
}

/// Grid or block dimensions of a launch, as CUDA's `dim3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dim3 {
    /// Extent in x (the fastest-varying thread or block index).
    pub x: u32,
    /// Extent in y.
    pub y: u32,
    /// Extent in z.
    pub z: u32,
}

impl Dim3 {
    /// Dimensions (x, y, z).
    pub const fn new(x: u32, y: u32, z: u32) -> Self {
        Dim3 { x, y, z }
    }

    /// One-dimensional extent x (y = z = 1).
    pub const fn x(x: u32) -> Self {
        Dim3 { x, y: 1, z: 1 }
    }

    /// Number of threads (or blocks): x · y · z.
    pub const fn count(&self) -> u64 {
        self.x as u64 * self.y as u64 * self.z as u64
    }
}

impl From<u32> for Dim3 {
    fn from(x: u32) -> Self {
        Dim3::x(x)
    }
}

impl From<(u32, u32)> for Dim3 {
    fn from((x, y): (u32, u32)) -> Self {
        Dim3 { x, y, z: 1 }
    }
}

impl From<(u32, u32, u32)> for Dim3 {
    fn from((x, y, z): (u32, u32, u32)) -> Self {
        Dim3 { x, y, z }
    }
}

/// The order in which the emulator runs a block's threads between two yield points (and
/// the order of the blocks of the grid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Schedule {
    /// Threads in ascending linear index (x fastest), blocks in ascending order.
    #[default]
    Ascending,
    /// Threads in descending linear index, blocks in descending order.
    Descending,
}

/// Room for the emulator's error message.
const ERR_LEN: usize = 2048;

/// Runs `kernel` on the emulator and waits for it to finish.
///
/// `params[i]` points to the value of the kernel's parameter `i` (cuLaunchKernel
/// convention); a pointer parameter's value is a host address. The number of params must
/// match the kernel's parameter count. Errors (unknown kernel, invalid configuration,
/// divergent barrier, `__trap`, ...) are [`Error::Invalid`] with a message that names the
/// kernel.
///
/// # Safety
/// Each `params[i]` must point to at least as many readable bytes as the kernel's
/// parameter `i` has ([`kernel_param_sizes`]), holding a valid value of its type, and
/// every address the kernel dereferences must be valid for the accesses it makes for the
/// whole call — exactly as on a GPU, nothing can be checked.
pub unsafe fn launch(
    kernel: &str,
    grid: Dim3,
    block: Dim3,
    dynamic_shared_bytes: usize,
    params: &mut [*mut c_void],
    schedule: Schedule,
) -> Result<()> {
    let name = CString::new(kernel)
        .map_err(|_| Error::invalid(format!("emulator: kernel name {kernel:?} contains NUL")))?;
    if let Some(sizes) = kernel_param_sizes(kernel) {
        if sizes.len() != params.len() {
            return Err(Error::invalid(format!(
                "emulator: kernel `{kernel}` takes {} parameters, {} given",
                sizes.len(),
                params.len()
            )));
        }
    }
    let mut err = vec![0u8; ERR_LEN];
    // SAFETY: `name` and `err` outlive the call and `err` is ERR_LEN bytes long; the
    // caller guarantees the params and the memory the kernel touches (see # Safety).
    let code = unsafe {
        svlp_emu_launch(
            name.as_ptr(),
            grid.x,
            grid.y,
            grid.z,
            block.x,
            block.y,
            block.z,
            dynamic_shared_bytes,
            if params.is_empty() {
                std::ptr::null_mut()
            } else {
                params.as_mut_ptr()
            },
            c_int::from(schedule == Schedule::Descending),
            err.as_mut_ptr().cast(),
            err.len(),
        )
    };
    if code == 0 {
        return Ok(());
    }
    let msg = CStr::from_bytes_until_nul(&err)
        .map(|m| m.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("emulator launch of `{kernel}` failed (code {code})"));
    Err(Error::invalid(msg))
}

/// The names of all kernels the emulator can launch, sorted.
pub fn kernel_names() -> Vec<String> {
    // SAFETY: plain queries of the static kernel table; names are NUL-terminated static
    // strings (or NULL out of range, which is skipped).
    unsafe {
        (0..svlp_emu_kernel_count())
            .filter_map(|i| {
                let p = svlp_emu_kernel_name(i);
                (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
            })
            .collect()
    }
}

/// The size in bytes of each parameter of `kernel`, or `None` for an unknown kernel.
pub fn kernel_param_sizes(kernel: &str) -> Option<Vec<usize>> {
    let name = CString::new(kernel).ok()?;
    // SAFETY: the first call writes nothing (max 0); the second writes at most
    // `sizes.len()` entries into `sizes`.
    unsafe {
        let n = svlp_emu_kernel_params(name.as_ptr(), std::ptr::null_mut(), 0);
        let len = usize::try_from(n).ok()?;
        let mut sizes = vec![0usize; len];
        svlp_emu_kernel_params(name.as_ptr(), sizes.as_mut_ptr(), n);
        Some(sizes)
    }
}
