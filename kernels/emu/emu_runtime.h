// CUDA emulator: the interface between the device-side shim (the inline intrinsics that
// kernels call) and the fiber runtime (scheduler.cpp, warp_ops.cpp, launch.cpp). Kernels
// never use this directly; everything here lives in namespace svlp_emu.
//
// The runtime runs the threads of one block as fibers on the calling OS thread; only one
// block of one launch runs at a time in the whole process (a global mutex), so the
// "current thread" state below is plain global data that the scheduler rewrites before it
// resumes a fiber.
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>

#include "emu_vector_types.h"

#define SVLP_EMU_HIDDEN __attribute__((visibility("hidden")))

namespace svlp_emu {

// The running fiber's built-in variables (threadIdx, blockIdx, blockDim, gridDim) and its
// linear thread index x + y·bx + z·bx·by.
extern uint3 g_thread_idx SVLP_EMU_HIDDEN;
extern uint3 g_block_idx SVLP_EMU_HIDDEN;
extern dim3 g_block_dim SVLP_EMU_HIDDEN;
extern dim3 g_grid_dim SVLP_EMU_HIDDEN;
extern unsigned g_linear_tid SVLP_EMU_HIDDEN;

// A call site of a synchronising intrinsic, for error messages and for matching threads
// that wait at a barrier: `what` names the intrinsic ("__syncthreads()"), `loc` is where
// the kernel called it.
struct Site {
  const char* what;
  std::source_location loc;
};

// True when two sites are the same call site (same file, line and column).
bool same_site(const Site& a, const Site& b) SVLP_EMU_HIDDEN;

// Block barriers: plain __syncthreads and the reducing variants.
enum class BarrierKind : int { Plain, Count, And, Or };

// Waits until every non-exited thread of the block reaches this same call site; returns
// the reduction of `pred` over those threads (the count for Count, 0/1 for And/Or).
int block_barrier(const Site& site, BarrierKind kind, int pred) SVLP_EMU_HIDDEN;

// A warp collective. Every participating lane passes a pointer to its own data; once all
// non-exited lanes named in `mask` wait at the same call site with the same mask,
// `combine` runs once with lane_data[l] for each participating lane l (nullptr for the
// others) and the mask of participants. It returns false and writes a message into `err`
// to fail the launch.
using WarpCombine = bool (*)(void* const* lane_data, unsigned participants, char* err,
                             std::size_t err_len);
void warp_collective(const Site& site, unsigned mask, WarpCombine combine,
                     void* lane_data) SVLP_EMU_HIDDEN;

// Shuffle modes as in PTX shfl.sync.
enum class ShflMode : int { Idx, Up, Down, Bfly };
// __shfl*_sync on a value of up to 8 bytes (as raw bits).
std::uint64_t warp_shuffle(const Site& site, unsigned mask, std::uint64_t value, ShflMode mode,
                           int arg, int width) SVLP_EMU_HIDDEN;

// Votes and integer reductions over the participating lanes.
enum class WarpReduce : int { Ballot, Any, All, Add, Min, Max, UMin, UMax, And, Or, Xor, MatchAny };
// Returns the reduction of `value` (for Ballot/Any/All: the predicate; for MatchAny: the
// mask of lanes whose 64-bit value equals this lane's).
std::uint64_t warp_reduce(const Site& site, unsigned mask, WarpReduce op,
                          std::uint64_t value) SVLP_EMU_HIDDEN;

// __syncwarp(mask).
void warp_sync(const Site& site, unsigned mask) SVLP_EMU_HIDDEN;

// Mask of the current warp's lanes that exist (partial last warp) and have not exited.
unsigned live_lanes() SVLP_EMU_HIDDEN;

// Lets the other threads of the block run before this one continues (__nanosleep).
void yield_thread() SVLP_EMU_HIDDEN;

// Aborts the launch from inside a kernel thread with a printf-style message; the launch
// returns an error naming the kernel and the block.
[[noreturn]] void fail(const char* fmt, ...) SVLP_EMU_HIDDEN __attribute__((format(printf, 1, 2)));

// The launch's dynamic shared memory (128-byte aligned, dynamic_shared_bytes long).
extern unsigned char* g_dynamic_smem SVLP_EMU_HIDDEN;

// The path of a source file as printed in messages.
const char* short_path(const char* file) SVLP_EMU_HIDDEN;

}  // namespace svlp_emu
