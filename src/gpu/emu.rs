//! The emulator device: the same kernels/*.cu, compiled for the host and run by the fiber
//! emulator in kernels/emu, with host memory standing in for device memory.

use std::cell::Cell;
use std::ffi::c_void;

use super::buffer::{GpuBuffer, HostBlock, Memory};
use super::emu_ffi::{self, Dim3};
use super::launch::{ArgSlot, LaunchConfig};
use crate::device::Device;
use crate::error::{Error, Result};

pub use super::emu_ffi::Schedule;

thread_local! {
    static DESCENDING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with emulated launches made on this thread executing each block's threads in
/// the given order between barriers. Kernel tests run both orders and compare results: a
/// missing `__syncthreads` makes them differ.
pub fn with_schedule<R>(schedule: Schedule, f: impl FnOnce() -> R) -> R {
    let descending = matches!(schedule, Schedule::Descending);
    let before = DESCENDING.with(|d| d.replace(descending));
    let out = f();
    DESCENDING.with(|d| d.set(before));
    out
}

fn dim3((x, y, z): (u32, u32, u32)) -> Dim3 {
    Dim3 { x, y, z }
}

/// The emulator backend (stateless: the emulator library holds its own lock).
#[derive(Debug, Default)]
pub struct EmuBackend;

impl EmuBackend {
    /// A zeroed buffer of `bytes` bytes in host memory.
    pub fn alloc(&self, bytes: usize) -> Result<GpuBuffer> {
        let block = HostBlock::zeroed(bytes);
        Ok(GpuBuffer {
            device: Device::Emu,
            bytes,
            address: block.as_ptr() as u64,
            memory: Memory::Emu(block),
        })
    }

    /// A new buffer with the same bytes as `src`.
    pub fn duplicate(&self, src: &GpuBuffer) -> Result<GpuBuffer> {
        let Memory::Emu(from) = &src.memory else {
            return Err(Error::invalid("emulator copy of a non-emulator buffer"));
        };
        let copy = self.alloc(src.bytes)?;
        let Memory::Emu(to) = &copy.memory else {
            unreachable!("alloc returns emulator memory")
        };
        // SAFETY: both blocks hold at least src.bytes bytes and are distinct allocations;
        // emulated launches are synchronous, so nothing writes `src` meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), to.as_ptr(), src.bytes) };
        Ok(copy)
    }

    /// Copies `src` into the start of `dst`.
    pub fn upload(&self, dst: &mut GpuBuffer, src: &[u8]) -> Result<()> {
        let Memory::Emu(block) = &dst.memory else {
            return Err(Error::invalid("emulator upload into a non-emulator buffer"));
        };
        // SAFETY: the block holds at least dst.bytes ≥ src.len() bytes (checked by the
        // caller) and `&mut dst` guarantees no kernel or reader uses it concurrently.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), block.as_ptr(), src.len()) };
        Ok(())
    }

    /// Copies the start of `src` into `dst`.
    pub fn download(&self, src: &GpuBuffer, dst: &mut [u8]) -> Result<()> {
        let Memory::Emu(block) = &src.memory else {
            return Err(Error::invalid(
                "emulator download from a non-emulator buffer",
            ));
        };
        // SAFETY: the block holds at least src.bytes ≥ dst.len() bytes (checked by the
        // caller); emulated launches are synchronous, so no kernel is writing it now.
        unsafe { std::ptr::copy_nonoverlapping(block.as_ptr(), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Runs `kernel` to completion on the emulator.
    pub(crate) fn launch(&self, kernel: &str, cfg: LaunchConfig, args: &[ArgSlot]) -> Result<()> {
        let mut values: Vec<u64> = args.iter().map(|a| a.bits).collect();
        let mut params: Vec<*mut c_void> = values
            .iter_mut()
            .map(|v| v as *mut u64 as *mut c_void)
            .collect();
        let schedule = if DESCENDING.with(|d| d.get()) {
            Schedule::Descending
        } else {
            Schedule::Ascending
        };
        // SAFETY: params point at live 8-byte slots whose leading bytes hold each argument
        // as the kernel's parameter type expects (little-endian); buffers passed as
        // addresses are owned by the caller's GpuBuffers for the whole (synchronous) call.
        unsafe {
            emu_ffi::launch(
                kernel,
                dim3(cfg.grid),
                dim3(cfg.block),
                cfg.shared_mem_bytes as usize,
                &mut params,
                schedule,
            )
        }
    }
}
