// CUDA emulator: kernel lookup and the C ABI that lists the registered kernels
// (svlp_emu_kernel_count, svlp_emu_kernel_name, svlp_emu_kernel_params).
#include "registry.h"

#include <cstring>

namespace svlp_emu {

const KernelEntry* find_kernel(const char* name) {
  int lo = 0, hi = g_kernel_count;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    const int c = std::strcmp(g_kernels[mid]->name, name);
    if (c == 0) return g_kernels[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return nullptr;
}

}  // namespace svlp_emu

extern "C" {

// Number of kernels the emulator can launch.
int svlp_emu_kernel_count(void) { return svlp_emu::g_kernel_count; }

// Name of kernel i (sorted by name), or NULL when i is out of range.
const char* svlp_emu_kernel_name(int i) {
  if (i < 0 || i >= svlp_emu::g_kernel_count) return nullptr;
  return svlp_emu::g_kernels[i]->name;
}

// Number of parameters of `kernel` (-1 if unknown); writes the size of each of the first
// `max_sizes` parameters to `sizes` (may be NULL when max_sizes is 0).
int svlp_emu_kernel_params(const char* kernel, size_t* sizes, int max_sizes) {
  const svlp_emu::KernelEntry* k = kernel ? svlp_emu::find_kernel(kernel) : nullptr;
  if (!k) return -1;
  for (int i = 0; i < k->param_count && i < max_sizes; ++i) sizes[i] = k->param_sizes[i];
  return k->param_count;
}

}  // extern "C"
