// Emulator self-test: warp shuffles, votes and warp reductions.
//   emu_selftest_shuffles  per thread t: out[8t + k] for k = xor, down, up, idx (each with
//                          `width`), then ballot, any, all of (in[t] odd), popc(ballot)
//   emu_selftest_warp_misc __match_any_sync, __reduce_add/min/max_sync, __syncwarp
// Work split: one 1-D block; thread t owns out[8t .. 8t + 7].
#include "selftest.cuh"

extern "C" __global__ void emu_selftest_shuffles(const int* __restrict__ in, int width,
                                                 int offset, int* __restrict__ out) {
  const int t = threadIdx.x;
  const int v = in[t];
  const unsigned full = 0xffffffffu;
  out[8 * t + 0] = __shfl_xor_sync(full, v, offset, width);
  out[8 * t + 1] = __shfl_down_sync(full, v, offset, width);
  out[8 * t + 2] = __shfl_up_sync(full, v, offset, width);
  out[8 * t + 3] = __shfl_sync(full, v, offset, width);
  const unsigned ballot = __ballot_sync(full, v & 1);
  out[8 * t + 4] = (int)ballot;
  out[8 * t + 5] = __any_sync(full, v & 1);
  out[8 * t + 6] = __all_sync(full, v & 1);
  out[8 * t + 7] = __popc(ballot);
}

extern "C" __global__ void emu_selftest_warp_misc(const int* __restrict__ in,
                                                  int* __restrict__ out) {
  const int t = threadIdx.x;
  const int v = in[t];
  const unsigned full = 0xffffffffu;
  out[4 * t + 0] = (int)__match_any_sync(full, v);
  out[4 * t + 1] = __reduce_add_sync(full, v);
  out[4 * t + 2] = __reduce_min_sync(full, v);
  __syncwarp();
  out[4 * t + 3] = __reduce_max_sync(full, v);
}
