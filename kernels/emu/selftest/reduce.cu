// Emulator self-test: block reductions in shared memory.
//   emu_selftest_block_sum        correct tree reduction (barrier after every step)
//   emu_selftest_block_sum_racy   the same with the barrier between the first store and
//                                 the first read missing: a data race that the two
//                                 emulator schedules expose as different results
//   emu_selftest_block_sum_racy_tpl the racy version with its shared array declared in a
//                                 function template (GCC keeps such statics out of the
//                                 emulator's shared-memory section; they must be
//                                 poisoned before each launch all the same)
// Work split: a block of SELFTEST_THREADS threads sums one chunk of SELFTEST_THREADS
// inputs; out[blockIdx.x] is the chunk's sum.
#include "selftest.cuh"

extern "C" __global__ void __launch_bounds__(SELFTEST_THREADS)
emu_selftest_block_sum(const float* __restrict__ in, float* __restrict__ out) {
  __shared__ float s[SELFTEST_THREADS];
  const int t = threadIdx.x;
  s[t] = in[blockIdx.x * SELFTEST_THREADS + t];
  __syncthreads();
  for (int stride = SELFTEST_THREADS / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

extern "C" __global__ void emu_selftest_block_sum_racy(const float* __restrict__ in,
                                                       float* __restrict__ out) {
  __shared__ float s[SELFTEST_THREADS];
  const int t = threadIdx.x;
  s[t] = in[blockIdx.x * SELFTEST_THREADS + t];
  // BUG (planted): no __syncthreads() here; thread t reads s[t + stride], which another
  // thread writes in this same barrier interval.
  for (int stride = SELFTEST_THREADS / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

template <int N>
__device__ void racy_block_sum(const float* __restrict__ in, float* __restrict__ out) {
  __shared__ float s[N];
  const int t = threadIdx.x;
  s[t] = in[blockIdx.x * N + t];
  // BUG (planted): no __syncthreads() here.
  for (int stride = N / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

extern "C" __global__ void emu_selftest_block_sum_racy_tpl(const float* __restrict__ in,
                                                           float* __restrict__ out) {
  racy_block_sum<SELFTEST_THREADS>(in, out);
}
