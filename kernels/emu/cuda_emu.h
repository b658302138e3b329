// CUDA emulator shim: force-included before every kernels/*.cu that is compiled for the
// host (`g++ -std=c++20 -include kernels/emu/cuda_emu.h -Ikernels/emu/include -mf16c`), so
// the unchanged CUDA source compiles as C++ and runs on the fiber runtime of this folder.
// It defines the CUDA qualifiers away, __shared__ as a function-local `static` (one block
// runs at a time, so a static is that block's shared memory), and pulls in the parts:
// vector types, built-in variables and synchronising intrinsics, math, atomics, 16-bit
// floats and WMMA. kernels/emu/README.md lists everything that is supported.
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "the CUDA emulator shim needs C++20 (-std=c++20)"
#endif

// Host headers that kernels may include, pulled in first so that re-including them from a
// kernel file (inside the emulator's per-file namespace) is a no-op.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <source_location>
#include <type_traits>
#include <utility>

// Marks code compiled for the emulator (nvcc never defines it). __CUDA_ARCH__ and
// __CUDACC__ are deliberately NOT defined: code under `#ifdef __CUDA_ARCH__` (inline PTX)
// is the device-only path and must have an `#else` the host compiler can build.
#define SVLP_EMU 1

// ---- qualifiers --------------------------------------------------------------------------
// Functions and variables: plain C++ (each kernel file is its own translation unit with
// internal linkage, like a CUDA module, so helpers in a shared .cuh never clash).
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__
// __restrict__ is a GNU C++ keyword already.

// Shared memory: one static per declaration, shared by all threads of the running block.
// On ELF targets every __shared__ variable goes to one section, which the runtime fills
// with 0xff bytes (NaN as float, -1 as int) at the start of every launch, so reading
// shared memory that this launch never wrote gives the same (poisoned) result every time.
#if defined(__ELF__)
#define __shared__ static __attribute__((section("svlp_emu_shared")))
#else
#define __shared__ static
#endif

#include "emu_vector_types.h"
#include "emu_runtime.h"
#include "emu_builtins.h"
#include "emu_math.h"
#include "emu_half.h"
#include "emu_atomics.h"
#include "emu_wmma.h"

// Defined last: libstdc++ spells __attribute__((__noinline__)) itself.
#define __noinline__ __attribute__((noinline))
