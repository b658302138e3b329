// CUDA emulator stand-in for <cuda_bf16.h>: __nv_bfloat16, __nv_bfloat162 and their intrinsics come from the emulator shim
// (kernels/emu/cuda_emu.h), which is force-included before every kernel file, so this
// header only makes `#include <cuda_bf16.h>` resolve on the host.
#pragma once
#include "../cuda_emu.h"
