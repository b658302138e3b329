// CUDA emulator stand-in for <mma.h>: nvcuda::wmma come from the emulator shim
// (kernels/emu/cuda_emu.h), which is force-included before every kernel file, so this
// header only makes `#include <mma.h>` resolve on the host.
#pragma once
#include "../cuda_emu.h"
