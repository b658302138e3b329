//! What a kernel launch needs, independent of the device that runs it: the grid, block
//! and dynamic shared-memory sizes, and the kernel's arguments.

use super::buffer::GpuBuffer;

/// Grid/block/shared-memory sizes of one launch (CUDA semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks per grid (x, y, z).
    pub grid: (u32, u32, u32),
    /// Threads per block (x, y, z).
    pub block: (u32, u32, u32),
    /// Dynamic shared memory per block, in bytes.
    pub shared_mem_bytes: u32,
}

impl LaunchConfig {
    /// A 1-D launch of `blocks` blocks of `threads` threads without dynamic shared memory.
    pub fn linear(blocks: u32, threads: u32) -> Self {
        LaunchConfig {
            grid: (blocks, 1, 1),
            block: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Threads per block.
    pub fn threads_per_block(&self) -> u64 {
        self.block.0 as u64 * self.block.1 as u64 * self.block.2 as u64
    }
}

/// One kernel argument, in the order of the kernel's parameters.
#[derive(Debug, Clone, Copy)]
pub enum KernelArg<'a> {
    /// A device buffer, passed as a pointer to its first byte.
    Buf(&'a GpuBuffer),
    /// A device buffer at a byte offset (e.g. one matrix of a batch).
    BufAt(&'a GpuBuffer, usize),
    /// A C `int`.
    I32(i32),
    /// A C `unsigned`.
    U32(u32),
    /// A C `unsigned long long`.
    U64(u64),
    /// A C `float`.
    F32(f32),
}

/// An argument reduced to the bits the kernel receives: an 8-byte slot whose first
/// `size` bytes hold the value (little-endian), as cuLaunchKernel reads parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArgSlot {
    pub bits: u64,
    pub size: usize,
}

impl KernelArg<'_> {
    /// The argument's value, with buffers resolved to device addresses.
    pub(crate) fn slot(&self) -> crate::Result<ArgSlot> {
        let ptr = |b: &GpuBuffer, offset: usize| -> crate::Result<ArgSlot> {
            if offset > b.len_bytes() {
                return Err(crate::Error::invalid(format!(
                    "kernel argument: offset {offset} is past the end of a {}-byte buffer",
                    b.len_bytes()
                )));
            }
            Ok(ArgSlot {
                bits: b.device_address() + offset as u64,
                size: 8,
            })
        };
        Ok(match *self {
            KernelArg::Buf(b) => ptr(b, 0)?,
            KernelArg::BufAt(b, offset) => ptr(b, offset)?,
            KernelArg::I32(v) => ArgSlot {
                bits: v as u32 as u64,
                size: 4,
            },
            KernelArg::U32(v) => ArgSlot {
                bits: v as u64,
                size: 4,
            },
            KernelArg::U64(v) => ArgSlot { bits: v, size: 8 },
            KernelArg::F32(v) => ArgSlot {
                bits: v.to_bits() as u64,
                size: 4,
            },
        })
    }
}
