// Emulator self-test: dynamic shared memory of a run-time size.
//   emu_selftest_dynamic_reverse  each block stages its n floats in dynamic shared
//                                 memory and writes them back reversed
// Work split: block b owns in/out[b·n .. b·n + n); thread t moves elements t, t + blockDim.
#include "selftest.cuh"

extern "C" __global__ void emu_selftest_dynamic_reverse(const float* __restrict__ in, int n,
                                                        float* __restrict__ out) {
  SVLP_DYNAMIC_SHARED(float, buf);
  const float* src = in + blockIdx.x * n;
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = src[i];
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[blockIdx.x * n + i] = buf[n - 1 - i];
}
