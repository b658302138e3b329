// Emulator self-test: barrier semantics.
//   emu_selftest_divergent_barrier   threads of a block wait at two different
//                                    __syncthreads (an error the emulator must report)
//   emu_selftest_barrier_vs_shuffle  lanes of one warp split between a __syncthreads and
//                                    a warp shuffle that can never complete (same)
//   emu_selftest_early_exit          threads >= n return before the barriers; the rest
//                                    reduce their values: exited threads count as arrived
//   emu_selftest_sync_count          __syncthreads_count/_and/_or
// Work split: one block; thread t owns element t.
#include "selftest.cuh"

extern "C" __global__ void emu_selftest_divergent_barrier(int* out) {
  const int t = threadIdx.x;
  if (t < 16) {
    __syncthreads();  // first call site
    out[t] = 1;
  } else {
    __syncthreads();  // second call site
    out[t] = 2;
  }
}

extern "C" __global__ void emu_selftest_barrier_vs_shuffle(int* out) {
  const int t = threadIdx.x;
  int v = t;
  if (t % 32 < 8) {
    __syncthreads();
  } else {
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  }
  out[t] = v;
}

extern "C" __global__ void emu_selftest_early_exit(const int* __restrict__ in, int n,
                                                   int* __restrict__ out) {
  __shared__ int s[SELFTEST_THREADS];
  const int t = threadIdx.x;
  if (t >= n) return;
  s[t] = in[t];
  __syncthreads();
  if (t == 0) {
    int sum = 0;
    for (int i = 0; i < n; ++i) sum += s[i];
    s[0] = sum;
  }
  __syncthreads();
  out[t] = s[0] + t;
}

extern "C" __global__ void emu_selftest_sync_count(const int* __restrict__ pred,
                                                   int* __restrict__ out) {
  const int t = threadIdx.x;
  const int p = pred[t];
  const int count = __syncthreads_count(p);
  const int all = __syncthreads_and(p);
  const int any = __syncthreads_or(p);
  if (t == 0) {
    out[0] = count;
    out[1] = all;
    out[2] = any;
  }
}
