//! GPU devices: CUDA through cudarc, and the emulator that runs the same kernels/*.cu on
//! the CPU. Launchers (grid/block/shared-memory choice, argument marshalling) are written
//! once against [`GpuContext`] and serve both devices.

mod buffer;
mod context;
pub mod cublas;
pub mod cuda;
pub mod dense;
pub mod emu;
pub mod emu_ffi;
mod launch;
pub mod modules;
pub mod sparse;
pub mod tensor_ops;

pub use buffer::GpuBuffer;
pub use context::GpuContext;
pub use launch::{KernelArg, LaunchConfig};

use crate::device::Device;

/// The devices GPU kernel tests run on: the emulator always, CUDA device 0 when usable.
/// Prints why CUDA is skipped, so test logs say what was (not) covered.
pub fn test_devices() -> Vec<Device> {
    let mut devices = vec![Device::Emu];
    match cuda::first_device() {
        Some(d) if GpuContext::get(d).is_ok() => devices.push(d),
        _ => {
            let why = cuda::probe()
                .problem
                .unwrap_or_else(|| "the CUDA device could not be opened".into());
            eprintln!("skipping CUDA device: {why} (kernels run on the emulator only)");
        }
    }
    devices
}
