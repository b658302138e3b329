// CUDA emulator: built-in variables and the synchronising intrinsics — threadIdx & co,
// __syncthreads (and _count/_and/_or), __syncwarp, warp shuffles, votes and integer warp
// reductions, __nanosleep, __trap, dynamic shared memory. Every synchronising intrinsic
// takes a defaulted std::source_location so the runtime knows its call site (divergent
// barriers are reported by file:line:column).
#pragma once

#include <cstring>
#include <source_location>
#include <type_traits>

#include "emu_runtime.h"

// Built-in variables of the running thread (read-only, like CUDA's).
#define threadIdx (static_cast<const ::uint3&>(::svlp_emu::g_thread_idx))
#define blockIdx (static_cast<const ::uint3&>(::svlp_emu::g_block_idx))
#define blockDim (static_cast<const ::dim3&>(::svlp_emu::g_block_dim))
#define gridDim (static_cast<const ::dim3&>(::svlp_emu::g_grid_dim))
constexpr int warpSize = 32;

// Dynamic shared memory of the launch (see cuda_emu.h for the macro kernels use).
#define SVLP_DYNAMIC_SHARED(type, name) \
  type* name = reinterpret_cast<type*>(::svlp_emu::g_dynamic_smem)

namespace svlp_emu {

using Loc = std::source_location;

template <typename T>
inline std::uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>,
                "warp intrinsics take values of at most 8 bytes");
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}

template <typename T>
inline T from_bits(std::uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

template <typename T>
inline T shuffle(const char* what, const Loc& loc, unsigned mask, T var, ShflMode mode, int arg,
                 int width) {
  return from_bits<T>(warp_shuffle(Site{what, loc}, mask, to_bits(var), mode, arg, width));
}

}  // namespace svlp_emu

// ---- block barriers -----------------------------------------------------------------
inline void __syncthreads(svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  svlp_emu::block_barrier({"__syncthreads()", loc}, svlp_emu::BarrierKind::Plain, 0);
}
inline int __syncthreads_count(int pred, svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return svlp_emu::block_barrier({"__syncthreads_count()", loc}, svlp_emu::BarrierKind::Count,
                                 pred != 0);
}
inline int __syncthreads_and(int pred, svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return svlp_emu::block_barrier({"__syncthreads_and()", loc}, svlp_emu::BarrierKind::And,
                                 pred != 0);
}
inline int __syncthreads_or(int pred, svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return svlp_emu::block_barrier({"__syncthreads_or()", loc}, svlp_emu::BarrierKind::Or,
                                 pred != 0);
}

// ---- warp synchronisation, shuffles, votes -------------------------------------------
inline void __syncwarp(unsigned mask = 0xffffffffu, svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  svlp_emu::warp_sync({"__syncwarp()", loc}, mask);
}

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
                     svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return svlp_emu::shuffle("__shfl_sync()", loc, mask, var, svlp_emu::ShflMode::Idx, src_lane,
                           width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                        svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return svlp_emu::shuffle("__shfl_up_sync()", loc, mask, var, svlp_emu::ShflMode::Up,
                           static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return svlp_emu::shuffle("__shfl_down_sync()", loc, mask, var, svlp_emu::ShflMode::Down,
                           static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                         svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return svlp_emu::shuffle("__shfl_xor_sync()", loc, mask, var, svlp_emu::ShflMode::Bfly,
                           lane_mask, width);
}

inline unsigned __ballot_sync(unsigned mask, int pred, svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return static_cast<unsigned>(svlp_emu::warp_reduce({"__ballot_sync()", loc}, mask,
                                                     svlp_emu::WarpReduce::Ballot, pred != 0));
}
inline int __any_sync(unsigned mask, int pred, svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return static_cast<int>(svlp_emu::warp_reduce({"__any_sync()", loc}, mask,
                                                svlp_emu::WarpReduce::Any, pred != 0));
}
inline int __all_sync(unsigned mask, int pred, svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return static_cast<int>(svlp_emu::warp_reduce({"__all_sync()", loc}, mask,
                                                svlp_emu::WarpReduce::All, pred != 0));
}
template <typename T>
inline unsigned __match_any_sync(unsigned mask, T value,
                                 svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  return static_cast<unsigned>(svlp_emu::warp_reduce(
      {"__match_any_sync()", loc}, mask, svlp_emu::WarpReduce::MatchAny, svlp_emu::to_bits(value)));
}

// sm_80 integer warp reductions.
#define SVLP_EMU_WARP_REDUCE(NAME, T, OP)                                                   \
  inline T NAME(unsigned mask, T value, svlp_emu::Loc loc = svlp_emu::Loc::current()) {     \
    return static_cast<T>(svlp_emu::warp_reduce({#NAME "()", loc}, mask, OP,                \
                                                static_cast<std::uint64_t>(                 \
                                                    static_cast<std::uint32_t>(value))));   \
  }
SVLP_EMU_WARP_REDUCE(__reduce_add_sync, unsigned, svlp_emu::WarpReduce::Add)
SVLP_EMU_WARP_REDUCE(__reduce_add_sync, int, svlp_emu::WarpReduce::Add)
SVLP_EMU_WARP_REDUCE(__reduce_min_sync, unsigned, svlp_emu::WarpReduce::UMin)
SVLP_EMU_WARP_REDUCE(__reduce_min_sync, int, svlp_emu::WarpReduce::Min)
SVLP_EMU_WARP_REDUCE(__reduce_max_sync, unsigned, svlp_emu::WarpReduce::UMax)
SVLP_EMU_WARP_REDUCE(__reduce_max_sync, int, svlp_emu::WarpReduce::Max)
SVLP_EMU_WARP_REDUCE(__reduce_and_sync, unsigned, svlp_emu::WarpReduce::And)
SVLP_EMU_WARP_REDUCE(__reduce_or_sync, unsigned, svlp_emu::WarpReduce::Or)
SVLP_EMU_WARP_REDUCE(__reduce_xor_sync, unsigned, svlp_emu::WarpReduce::Xor)
#undef SVLP_EMU_WARP_REDUCE

// Lanes of this warp that exist and have not exited. The emulator has no notion of
// divergence, so inside a divergent branch this is still every live lane (see README).
inline unsigned __activemask() { return svlp_emu::live_lanes(); }

// ---- miscellaneous --------------------------------------------------------------------
// Yields to the other threads of the block, so spin-waits on shared memory make progress.
inline void __nanosleep(unsigned) { svlp_emu::yield_thread(); }

[[noreturn]] inline void __trap(svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  svlp_emu::fail("__trap() called at %s:%u", svlp_emu::short_path(loc.file_name()),
                 static_cast<unsigned>(loc.line()));
}
[[noreturn]] inline void __brkpt(svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  svlp_emu::fail("__brkpt() called at %s:%u", svlp_emu::short_path(loc.file_name()),
                 static_cast<unsigned>(loc.line()));
}
