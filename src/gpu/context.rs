//! One handle per GPU device — CUDA or emulator — with the memory and launch operations
//! the launchers need. The launch layer above it is shared by both devices.

use std::sync::OnceLock;

use super::buffer::GpuBuffer;
use super::cuda::CudaBackend;
use super::emu::EmuBackend;
use super::launch::{ArgSlot, KernelArg, LaunchConfig};
use crate::device::Device;
use crate::error::{Error, Result};

/// A GPU device ready to allocate memory and launch kernels.
#[derive(Debug)]
pub enum GpuContext {
    /// A CUDA device.
    Cuda(CudaBackend),
    /// The CPU emulator of the CUDA kernels.
    Emu(EmuBackend),
}

static EMU: OnceLock<GpuContext> = OnceLock::new();
static CUDA: OnceLock<std::result::Result<GpuContext, String>> = OnceLock::new();

impl GpuContext {
    /// The process-wide context of `device` (created on first use). Only device 0 of
    /// CUDA is supported for now; the CPU is not a GPU device.
    pub fn get(device: Device) -> Result<&'static GpuContext> {
        match device {
            Device::Emu => Ok(EMU.get_or_init(|| GpuContext::Emu(EmuBackend))),
            Device::Cuda(0) => CUDA
                .get_or_init(|| {
                    CudaBackend::open(0)
                        .map(GpuContext::Cuda)
                        .map_err(|e| e.to_string())
                })
                .as_ref()
                .map_err(|e| Error::invalid(e.clone())),
            Device::Cuda(n) => Err(Error::invalid(format!(
                "device cuda:{n}: only CUDA device 0 is supported"
            ))),
            Device::Cpu => Err(Error::invalid("the CPU is not a GPU device")),
        }
    }

    /// The device this context drives.
    pub fn device(&self) -> Device {
        match self {
            GpuContext::Cuda(c) => c.device(),
            GpuContext::Emu(_) => Device::Emu,
        }
    }

    /// A zeroed buffer of `bytes` bytes.
    pub fn alloc_bytes(&self, bytes: usize) -> Result<GpuBuffer> {
        match self {
            GpuContext::Cuda(c) => c.alloc(bytes),
            GpuContext::Emu(e) => e.alloc(bytes),
        }
    }

    /// Overwrites the start of `buf` with `data`.
    pub fn write<T: bytemuck::Pod>(&self, buf: &mut GpuBuffer, data: &[T]) -> Result<()> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.len() > buf.len_bytes() || buf.device() != self.device() {
            return Err(Error::invalid(format!(
                "write of {} bytes into a {}-byte buffer on {} (context {})",
                bytes.len(),
                buf.len_bytes(),
                buf.device(),
                self.device()
            )));
        }
        match self {
            GpuContext::Cuda(c) => c.upload(buf, bytes),
            GpuContext::Emu(e) => e.upload(buf, bytes),
        }
    }

    /// A new buffer holding `data`.
    pub fn upload<T: bytemuck::Pod>(&self, data: &[T]) -> Result<GpuBuffer> {
        let mut buf = self.alloc_bytes(std::mem::size_of_val(data))?;
        self.write(&mut buf, data)?;
        Ok(buf)
    }

    /// A new buffer on this device with the same contents as `buf` (a device-side copy).
    pub fn duplicate(&self, buf: &GpuBuffer) -> Result<GpuBuffer> {
        if buf.device() != self.device() {
            return Err(Error::invalid(format!(
                "copy of a buffer on {} through the {} context",
                buf.device(),
                self.device()
            )));
        }
        match self {
            GpuContext::Cuda(c) => c.duplicate(buf),
            GpuContext::Emu(e) => e.duplicate(buf),
        }
    }

    /// Sets every byte of `buf` to `byte` (0xFF poisons f32/bf16/f16 data with NaN).
    pub fn fill_bytes(&self, buf: &mut GpuBuffer, byte: u8) -> Result<()> {
        let data = vec![byte; buf.len_bytes()];
        self.write(buf, &data)
    }

    /// The buffer's contents as elements of `T` (trailing bytes that do not fill a whole
    /// element are ignored).
    pub fn download<T: bytemuck::Pod + Default>(&self, buf: &GpuBuffer) -> Result<Vec<T>> {
        if buf.device() != self.device() {
            return Err(Error::invalid(format!(
                "download of a buffer on {} through the {} context",
                buf.device(),
                self.device()
            )));
        }
        let n = buf.len_bytes() / std::mem::size_of::<T>().max(1);
        let mut out = vec![T::default(); n];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out);
        match self {
            GpuContext::Cuda(c) => c.download(buf, bytes)?,
            GpuContext::Emu(e) => e.download(buf, bytes)?,
        }
        Ok(out)
    }

    /// Launches `kernel` with `args` (in the kernel's parameter order). Emulated launches
    /// complete before returning; CUDA launches are queued on the device's stream.
    pub fn launch(&self, kernel: &str, cfg: LaunchConfig, args: &[KernelArg]) -> Result<()> {
        if cfg.threads_per_block() == 0 || cfg.threads_per_block() > 1024 {
            return Err(Error::invalid(format!(
                "launch of {kernel}: {} threads per block (must be 1..=1024)",
                cfg.threads_per_block()
            )));
        }
        if cfg.grid.0 == 0 || cfg.grid.1 == 0 || cfg.grid.2 == 0 {
            return Ok(()); // an empty grid is a no-op, as in CUDA
        }
        let mut slots: Vec<ArgSlot> = Vec::with_capacity(args.len());
        for a in args {
            if let KernelArg::Buf(b) | KernelArg::BufAt(b, _) = a {
                if b.device() != self.device() {
                    return Err(Error::invalid(format!(
                        "launch of {kernel} on {}: an argument buffer lives on {}",
                        self.device(),
                        b.device()
                    )));
                }
            }
            slots.push(a.slot()?);
        }
        match self {
            GpuContext::Cuda(c) => c.launch(kernel, cfg, &slots),
            GpuContext::Emu(e) => e.launch(kernel, cfg, &slots),
        }
    }

    /// Waits until every queued launch has finished.
    pub fn synchronize(&self) -> Result<()> {
        match self {
            GpuContext::Cuda(c) => c.synchronize(),
            GpuContext::Emu(_) => Ok(()),
        }
    }
}
