// CUDA emulator stand-in for <cuda_runtime_api.h>: the built-in variables, intrinsics and types come from the emulator shim
// (kernels/emu/cuda_emu.h), which is force-included before every kernel file, so this
// header only makes `#include <cuda_runtime_api.h>` resolve on the host.
#pragma once
#include "../cuda_emu.h"
