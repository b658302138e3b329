//! Device memory: a byte buffer on a CUDA device or in the emulator's host memory.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use crate::device::Device;

/// Alignment of emulator allocations (cudaMalloc guarantees at least 256 bytes).
const EMU_ALIGN: usize = 256;

/// Host memory standing in for device memory on the emulator device.
#[derive(Debug)]
pub(crate) struct HostBlock {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the block is plain bytes owned by this value; access goes through raw pointers
// handed to (serialised) emulated kernels or through &mut/& methods of GpuBuffer.
unsafe impl Send for HostBlock {}
unsafe impl Sync for HostBlock {}

impl HostBlock {
    /// A zeroed, 256-byte-aligned block of `bytes` bytes (at least one byte is allocated).
    pub(crate) fn zeroed(bytes: usize) -> HostBlock {
        let layout = Layout::from_size_align(bytes.max(1), EMU_ALIGN).expect("layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        HostBlock { ptr, layout }
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for HostBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Where a buffer's bytes live.
#[derive(Debug)]
pub(crate) enum Memory {
    /// CUDA device memory.
    Cuda(cudarc::driver::CudaSlice<u8>),
    /// Emulator memory (host).
    Emu(HostBlock),
}

/// A buffer of device memory, freed on drop.
#[derive(Debug)]
pub struct GpuBuffer {
    pub(crate) device: Device,
    pub(crate) bytes: usize,
    pub(crate) address: u64,
    pub(crate) memory: Memory,
}

impl GpuBuffer {
    /// The device holding the buffer.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// The address kernels see (a device pointer, or a host address on the emulator).
    pub fn device_address(&self) -> u64 {
        self.address
    }
}
