// CUDA emulator stand-in for <vector_types.h>: the vector types (float4, dim3, ...) come from the emulator shim
// (kernels/emu/cuda_emu.h), which is force-included before every kernel file, so this
// header only makes `#include <vector_types.h>` resolve on the host.
#pragma once
#include "../cuda_emu.h"
