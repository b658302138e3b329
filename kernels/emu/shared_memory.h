// CUDA emulator: shared memory of a launch — the dynamic shared memory buffer and the
// poisoning of every kernel's static __shared__ variables at the start of each launch.
#pragma once

#include <cstddef>

namespace svlp_emu {

// Largest dynamic shared memory a launch may ask for: 227 KiB, the sm_90 maximum.
constexpr std::size_t kMaxDynamicShared = 227 * 1024;

// Fills the static __shared__ variables of all kernels and the first `dynamic_bytes`
// bytes of the dynamic shared memory buffer with 0xff bytes (NaN as f32/f16/bf16, -1 as
// an integer). Called with the launch lock held.
void poison_shared_memory(std::size_t dynamic_bytes) __attribute__((visibility("hidden")));

}  // namespace svlp_emu
