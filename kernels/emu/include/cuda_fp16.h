// CUDA emulator stand-in for <cuda_fp16.h>: __half, __half2 and their intrinsics come from the emulator shim
// (kernels/emu/cuda_emu.h), which is force-included before every kernel file, so this
// header only makes `#include <cuda_fp16.h>` resolve on the host.
#pragma once
#include "../cuda_emu.h"
