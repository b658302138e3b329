// Shared by the emulator's self-test kernels (kernels/emu/selftest/*.cu, launched by
// tests/emu_selftest.rs). These files are valid CUDA as well: nvcc must accept them.
#pragma once

// Dynamic shared memory. The emulator's shim defines this macro itself (force-included
// first); under nvcc it is the usual extern __shared__ array.
#ifndef SVLP_DYNAMIC_SHARED
#define SVLP_DYNAMIC_SHARED(type, name)                              \
  extern __shared__ __align__(16) unsigned char selftest_smem_[];    \
  type* name = reinterpret_cast<type*>(selftest_smem_)
#endif

// Threads per block of the reduction self-tests.
constexpr int SELFTEST_THREADS = 256;
