// CUDA emulator: the glue the generated translation units use to register a kernel —
// invoke_kernel unpacks cuLaunchKernel-style parameters (params[i] points to argument i)
// into the kernel's typed parameters, deduced from the function pointer; param_sizes
// lists sizeof each parameter for the registry.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "registry.h"

namespace svlp_emu {

// Argument i read from wherever params[i] points (no alignment needed).
template <typename T>
inline T load_arg(const void* src) {
  static_assert(std::is_trivially_copyable_v<T>, "kernel parameters must be trivially copyable");
  std::array<unsigned char, sizeof(T)> raw;
  std::memcpy(raw.data(), src, sizeof(T));
  return std::bit_cast<T>(raw);
}

template <typename... A, std::size_t... I>
inline void invoke_with(void (*kernel)(A...), void** params, std::index_sequence<I...>) {
  (void)params;
  kernel(load_arg<A>(params[I])...);
}

template <typename... A>
inline void invoke_kernel(void (*kernel)(A...), void** params) {
  invoke_with(kernel, params, std::index_sequence_for<A...>{});
}

template <typename... A>
constexpr std::array<std::uint32_t, sizeof...(A) + 1> param_sizes(void (*)(A...)) {
  return {static_cast<std::uint32_t>(sizeof(A))..., 0u};  // trailing 0: never empty
}

template <typename... A>
constexpr int param_count(void (*)(A...)) {
  return static_cast<int>(sizeof...(A));
}

}  // namespace svlp_emu
