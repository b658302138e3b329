// Element-wise f32 kernels of the layer path: residual add, counter-based dropout, ReLU
// and tanh (forward and backward), scaling.
//
// Work split
//   grid-stride loops: THREADS = 256 threads per block, each thread owns elements
//   i = blockIdx.x·blockDim.x + threadIdx.x + j·gridDim.x·blockDim.x. No shared memory,
//   no cooperation between threads.
//
// Dropout mask: `svlp_dropout_keep` of common.cuh — exactly the CPU rule
// `hash_uniform(seed, i) >= p` of src/rng.rs and src/ops/dropout.rs, so both devices draw
// the same mask. Kept values are multiplied by scale = 1/(1 − p); the backward applies the
// same mask and scale to the output gradient.
#include "common.cuh"

namespace elementwise_tile {
constexpr int THREADS = 256;  // threads per block (the launcher uses the same)
}  // namespace elementwise_tile

// y = a + b over n elements.
extern "C" __global__ void __launch_bounds__(elementwise_tile::THREADS) add_f32(const float* __restrict__ a, const float* __restrict__ b,
                                   float* __restrict__ y, unsigned long long n) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step) {
    y[i] = a[i] + b[i];
  }
}

// y = dropout(x): kept elements scaled by `scale`, dropped ones zero.
extern "C" __global__ void __launch_bounds__(elementwise_tile::THREADS) dropout_f32(const float* __restrict__ x, float* __restrict__ y,
                                       unsigned long long n, unsigned long long seed,
                                       unsigned threshold, float scale) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step) {
    y[i] = svlp_dropout_keep(seed, i, threshold) ? x[i] * scale : 0.0f;
  }
}

// y = max(x, 0).
extern "C" __global__ void __launch_bounds__(elementwise_tile::THREADS) relu_f32(const float* __restrict__ x, float* __restrict__ y,
                                    unsigned long long n) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step) {
    y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  }
}

// dx = dy where x > 0, else 0.
extern "C" __global__ void __launch_bounds__(elementwise_tile::THREADS) relu_backward_f32(const float* __restrict__ x,
                                             const float* __restrict__ dy,
                                             float* __restrict__ dx, unsigned long long n) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step) {
    dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
  }
}

// y = tanh(x).
extern "C" __global__ void __launch_bounds__(elementwise_tile::THREADS) tanh_f32(const float* __restrict__ x, float* __restrict__ y,
                                    unsigned long long n) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step) {
    y[i] = tanhf(x[i]);
  }
}

// dx = dy · (1 − y²), given the forward output y.
extern "C" __global__ void __launch_bounds__(elementwise_tile::THREADS) tanh_backward_f32(const float* __restrict__ y,
                                             const float* __restrict__ dy,
                                             float* __restrict__ dx, unsigned long long n) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step) {
    dx[i] = dy[i] * (1.0f - y[i] * y[i]);
  }
}

// y = s · x.
extern "C" __global__ void __launch_bounds__(elementwise_tile::THREADS) scale_f32(const float* __restrict__ x, float* __restrict__ y,
                                     unsigned long long n, float s) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step) {
    y[i] = s * x[i];
  }
}
