// CUDA emulator: the kernel registry — one entry per `extern "C" __global__` kernel found
// by kernels/emu/build_emu.rs, with the trampoline that calls it from cuLaunchKernel-style
// parameters. The generated per-file translation units define the entries; the generated
// table (sorted by name) lists them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace svlp_emu {

struct KernelEntry {
  const char* name;                   // the kernel's name
  const char* source;                 // its file, relative to the crate root
  void (*trampoline)(void** params);  // calls the kernel with *params[i] as argument i
  int param_count;                    // number of parameters
  const std::uint32_t* param_sizes;   // sizeof each parameter
};

// The kernel called `name`, or nullptr.
const KernelEntry* find_kernel(const char* name) __attribute__((visibility("hidden")));
// All kernels, sorted by name (generated).
extern const KernelEntry* const g_kernels[] __attribute__((visibility("hidden")));
extern const int g_kernel_count __attribute__((visibility("hidden")));

}  // namespace svlp_emu
