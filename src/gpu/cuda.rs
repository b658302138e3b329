//! The CUDA device through cudarc with dynamic loading: no link-time CUDA dependency, so
//! the crate builds and runs on machines without a driver. Detection never panics
//! (cudarc panics when libcuda is missing, so its presence is checked first).

use std::collections::HashMap;
use std::panic::catch_unwind;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, PushKernelArg};
use cudarc::nvrtc::Ptx;

use super::buffer::{GpuBuffer, Memory};
use super::launch::{ArgSlot, LaunchConfig};
use super::modules::{module_of, KernelModule};
use crate::device::Device;
use crate::error::{Error, Result};

/// A CUDA device found by [`probe`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct CudaDeviceInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Total device memory in bytes.
    pub total_memory: usize,
}

/// What the machine offers for CUDA.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CudaProbe {
    /// libcuda (the driver library) could be loaded.
    pub driver_found: bool,
    /// Usable devices.
    pub devices: Vec<CudaDeviceInfo>,
    /// Why no device is usable, when none is.
    pub problem: Option<String>,
}

fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the driver library; cudarc's own probe.
    catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false)
}

fn describe(ordinal: usize) -> std::result::Result<CudaDeviceInfo, String> {
    let ctx = CudaContext::new(ordinal).map_err(|e| e.to_string())?;
    Ok(CudaDeviceInfo {
        ordinal,
        name: ctx.name().map_err(|e| e.to_string())?,
        compute_capability: ctx.compute_capability().map_err(|e| e.to_string())?,
        total_memory: ctx.total_mem().map_err(|e| e.to_string())?,
    })
}

/// Looks for a CUDA driver and devices without ever panicking.
pub fn probe() -> CudaProbe {
    if !driver_present() {
        return CudaProbe {
            driver_found: false,
            devices: Vec::new(),
            problem: Some("no CUDA driver (libcuda) found".into()),
        };
    }
    let found = catch_unwind(|| -> std::result::Result<Vec<CudaDeviceInfo>, String> {
        let count = CudaContext::device_count().map_err(|e| e.to_string())?;
        (0..count.max(0) as usize).map(describe).collect()
    });
    match found {
        Ok(Ok(devices)) if !devices.is_empty() => CudaProbe {
            driver_found: true,
            devices,
            problem: None,
        },
        Ok(Ok(_)) => CudaProbe {
            driver_found: true,
            devices: Vec::new(),
            problem: Some("the CUDA driver reports no devices".into()),
        },
        Ok(Err(e)) => CudaProbe {
            driver_found: true,
            devices: Vec::new(),
            problem: Some(format!("CUDA driver error: {e}")),
        },
        Err(_) => CudaProbe {
            driver_found: true,
            devices: Vec::new(),
            problem: Some("the CUDA driver could not be initialised".into()),
        },
    }
}

fn cuda_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("CUDA {what}: {e}"))
}

/// A CUDA context with its default stream and a cache of loaded modules and functions.
pub struct CudaBackend {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaBackend({})", self.ordinal)
    }
}

impl CudaBackend {
    /// Opens device `ordinal`; fails (no panic) without a driver or device.
    pub fn open(ordinal: usize) -> Result<CudaBackend> {
        if !driver_present() {
            return Err(Error::invalid(
                "device cuda: no CUDA driver (libcuda) found on this machine",
            ));
        }
        let ctx = catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| Error::invalid("device cuda: the CUDA driver could not be initialised"))?
            .map_err(|e| cuda_err(&format!("device {ordinal}"), e))?;
        let stream = ctx.default_stream();
        Ok(CudaBackend {
            ordinal,
            ctx,
            stream,
            modules: Mutex::new(HashMap::new()),
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// The device this backend drives.
    pub fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    fn module(&self, m: &'static KernelModule) -> Result<Arc<CudaModule>> {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(loaded) = modules.get(m.name) {
            return Ok(loaded.clone());
        }
        let ptx = match m.ptx {
            Some(text) => Ptx::from_src(text),
            None => {
                let opts = cudarc::nvrtc::CompileOptions {
                    arch: Some("compute_80"),
                    options: vec!["-std=c++17".into()],
                    ..Default::default()
                };
                cudarc::nvrtc::compile_ptx_with_opts(m.source, opts)
                    .map_err(|e| cuda_err(&format!("NVRTC compile of kernels/{}.cu", m.name), e))?
            }
        };
        let loaded = self
            .ctx
            .load_module(ptx)
            .map_err(|e| cuda_err(&format!("load of kernels/{}.cu", m.name), e))?;
        modules.insert(m.name, loaded.clone());
        Ok(loaded)
    }

    fn function(&self, kernel: &str) -> Result<CudaFunction> {
        if let Some(f) = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(kernel)
        {
            return Ok(f.clone());
        }
        let module = self.module(module_of(kernel)?)?;
        let f = module
            .load_function(kernel)
            .map_err(|e| cuda_err(&format!("kernel {kernel}"), e))?;
        self.functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kernel.to_string(), f.clone());
        Ok(f)
    }

    /// A zeroed buffer of `bytes` bytes.
    pub fn alloc(&self, bytes: usize) -> Result<GpuBuffer> {
        let slice = self
            .stream
            .alloc_zeros::<u8>(bytes.max(1))
            .map_err(|e| cuda_err(&format!("allocation of {bytes} bytes"), e))?;
        let address = {
            use cudarc::driver::DevicePtr;
            slice.device_ptr(&self.stream).0
        };
        Ok(GpuBuffer {
            device: self.device(),
            bytes,
            address,
            memory: Memory::Cuda(slice),
        })
    }

    /// A new buffer with the same bytes as `src`, copied on the device.
    pub fn duplicate(&self, src: &GpuBuffer) -> Result<GpuBuffer> {
        let Memory::Cuda(slice) = &src.memory else {
            return Err(Error::invalid("CUDA copy of a non-CUDA buffer"));
        };
        let copy = self
            .stream
            .clone_dtod(slice)
            .map_err(|e| cuda_err("device-to-device copy", e))?;
        let address = {
            use cudarc::driver::DevicePtr;
            copy.device_ptr(&self.stream).0
        };
        Ok(GpuBuffer {
            device: self.device(),
            bytes: src.bytes,
            address,
            memory: Memory::Cuda(copy),
        })
    }

    /// Copies `src` into the start of `dst`.
    pub fn upload(&self, dst: &mut GpuBuffer, src: &[u8]) -> Result<()> {
        let Memory::Cuda(slice) = &mut dst.memory else {
            return Err(Error::invalid("CUDA upload into a non-CUDA buffer"));
        };
        let mut view = slice.slice_mut(0..src.len());
        self.stream
            .memcpy_htod(src, &mut view)
            .map_err(|e| cuda_err("host-to-device copy", e))
    }

    /// Copies the start of `src` into `dst`.
    pub fn download(&self, src: &GpuBuffer, dst: &mut [u8]) -> Result<()> {
        let Memory::Cuda(slice) = &src.memory else {
            return Err(Error::invalid("CUDA download from a non-CUDA buffer"));
        };
        let view = slice.slice(0..dst.len());
        self.stream
            .memcpy_dtoh(&view, dst)
            .map_err(|e| cuda_err("device-to-host copy", e))?;
        self.synchronize()
    }

    /// Launches `kernel` on the default stream.
    pub(crate) fn launch(&self, kernel: &str, cfg: LaunchConfig, args: &[ArgSlot]) -> Result<()> {
        let f = self.function(kernel)?;
        // Each argument gets a properly sized home that outlives the launch call.
        let wide: Vec<u64> = args.iter().map(|a| a.bits).collect();
        let narrow: Vec<u32> = args.iter().map(|a| a.bits as u32).collect();
        let mut builder = self.stream.launch_builder(&f);
        for (i, a) in args.iter().enumerate() {
            if a.size == 8 {
                builder.arg(&wide[i]);
            } else {
                builder.arg(&narrow[i]);
            }
        }
        let cu_cfg = cudarc::driver::LaunchConfig {
            grid_dim: cfg.grid,
            block_dim: cfg.block,
            shared_mem_bytes: cfg.shared_mem_bytes,
        };
        // SAFETY: argument count and sizes follow the kernel's signature as marshalled by
        // the launchers in gpu::dense; buffers outlive the launch (synchronised below).
        unsafe { builder.launch(cu_cfg) }
            .map_err(|e| cuda_err(&format!("launch of {kernel}"), e))?;
        Ok(())
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| cuda_err("synchronize", e))
    }
}

/// The first usable CUDA device, if any (used by `--device auto` and the tests).
pub fn first_device() -> Option<Device> {
    probe().devices.first().map(|d| Device::Cuda(d.ordinal))
}
