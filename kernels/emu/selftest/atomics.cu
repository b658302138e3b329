// Emulator self-test: atomics from many blocks.
//   emu_selftest_atomics  every thread of every block adds to shared counters:
//                         counters[0] += 1 (int), [1] += t (unsigned), [2] max of t,
//                         [3] min of -t, [4..5] a 64-bit add, fsum += 0.5f,
//                         hist[t % 16] += 1 via atomicCAS loop, last = atomicExch
// Work split: grid of blocks of 1-D threads; global thread id t = block · blockDim + tid.
#include "selftest.cuh"

extern "C" __global__ void emu_selftest_atomics(int* __restrict__ counters,
                                                unsigned long long* __restrict__ wide,
                                                float* __restrict__ fsum,
                                                int* __restrict__ hist) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(&counters[0], 1);
  atomicAdd(reinterpret_cast<unsigned*>(&counters[1]), (unsigned)t);
  atomicMax(&counters[2], t);
  atomicMin(&counters[3], -t);
  atomicAdd(wide, 1ull << 33);
  atomicAdd(fsum, 0.5f);
  int* h = &hist[t % 16];
  int old = *h, assumed;
  do {
    assumed = old;
    old = atomicCAS(h, assumed, assumed + 1);
  } while (old != assumed);
  atomicExch(&counters[4], 7);
}
