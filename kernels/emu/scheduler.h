// CUDA emulator: the block scheduler. The threads of one block run as fibers on the
// calling OS thread, in rounds: each round resumes every runnable thread once, in
// ascending (or, for the Descending schedule, descending) linear thread order, and each
// runs until its next yield point — __syncthreads*, a warp collective (__syncwarp,
// shuffles, votes, wmma::mma_sync), __nanosleep — or its end. Between rounds the
// scheduler completes the warp collectives whose lanes have all arrived and, once every
// live thread waits at the same __syncthreads, releases the barrier. A state in which no
// thread can move (threads at different barriers, or at a barrier while lanes of their
// warp wait in a collective) is reported as a divergent barrier instead of hanging.
#pragma once

#include <string>

#include "emu_runtime.h"
#include "registry.h"

namespace svlp_emu {

// What the block's threads run.
struct BlockLaunch {
  const KernelEntry* kernel;
  void** params;
  bool descending;
};

// Runs every thread of block `block_idx` (of g_block_dim threads; g_grid_dim and
// g_block_dim are set by the caller) to completion. Returns false with a message in
// `err` when the block cannot complete; its fibers are then abandoned (their stacks are
// reused by the next block, no destructors run).
bool run_block(const BlockLaunch& launch, uint3 block_idx, std::string& err)
    __attribute__((visibility("hidden")));

}  // namespace svlp_emu
