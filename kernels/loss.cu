// Per-example losses and their gradients, f32, as src/ops/loss.rs:
//   BCE on logits with soft targets: loss[b] = Σ_a max(x, 0) − t·x + ln(1 + e^(−|x|)),
//     dlogits[b, a] = dloss[b] · (σ(x) − t);
//   softmax cross-entropy: loss[b] = logsumexp(x[b]) − x[b, target[b]],
//     dlogits[b] = dloss[b] · (softmax(x[b]) − onehot(target[b])).
// Logits are [B, A] (or [B, C]) row-major, targets [B, A] soft scores in [0, 1] (BCE) or
// u32 class indices [B] (CE), losses and dloss [B].
//
// Work split
//   bce_forward_f32, ce_forward_f32, ce_backward_f32: grid B; block THREADS = 128 threads
//     own one example (row); threads stride the row, block reductions (warp butterflies,
//     then the 4 warp results in order) keep the results deterministic.
//   bce_backward_f32: grid-stride element-wise over B·A (a thread owns one element a step).
//   A class index ≥ C makes that example's loss (and gradient row) NaN; the launcher checks
//   indices on the host when it has them.
#include "common.cuh"

namespace loss_tile {
constexpr int THREADS = 128;  // threads per block (one example per block for row kernels)
constexpr int EW_THREADS = 256;  // threads per block of bce_backward_f32
}  // namespace loss_tile

// σ(x) through e^(−|x|), never overflowing.
static __device__ __forceinline__ float svlp_sigmoid(float x) {
  const float e = expf(-fabsf(x));
  return x >= 0.f ? 1.f / (1.f + e) : e / (1.f + e);
}

extern "C" __global__ void __launch_bounds__(loss_tile::THREADS)
bce_forward_f32(const float* __restrict__ logits, const float* __restrict__ targets,
                float* __restrict__ loss, int batch, int classes) {
  __shared__ float scratch[loss_tile::THREADS / SVLP_WARP];
  const int b = blockIdx.x;
  if (b >= batch) return;
  const float* x = logits + (size_t)b * classes;
  const float* t = targets + (size_t)b * classes;
  float s = 0.f;
  for (int i = threadIdx.x; i < classes; i += blockDim.x) {
    const float v = x[i];
    s += fmaxf(v, 0.f) - t[i] * v + logf(1.f + expf(-fabsf(v)));
  }
  s = svlp_block_sum<loss_tile::THREADS>(s, scratch);
  if (threadIdx.x == 0) loss[b] = s;
}

extern "C" __global__ void __launch_bounds__(loss_tile::EW_THREADS)
bce_backward_f32(const float* __restrict__ logits, const float* __restrict__ targets,
                 const float* __restrict__ dloss, float* __restrict__ dlogits, int batch,
                 int classes) {
  const size_t total = (size_t)batch * classes;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)gridDim.x * blockDim.x) {
    dlogits[i] = dloss[i / classes] * (svlp_sigmoid(logits[i]) - targets[i]);
  }
}

// ln Σ e^x over a row of `classes` logits (every thread of the block gets it).
static __device__ __forceinline__ float svlp_row_logsumexp(const float* x, int classes,
                                                           float* scratch) {
  float m = -INFINITY;
  for (int i = threadIdx.x; i < classes; i += blockDim.x) m = fmaxf(m, x[i]);
  m = svlp_block_max<loss_tile::THREADS>(m, scratch);
  float s = 0.f;
  for (int i = threadIdx.x; i < classes; i += blockDim.x) s += expf(x[i] - m);
  s = svlp_block_sum<loss_tile::THREADS>(s, scratch);
  return m + logf(s);
}

extern "C" __global__ void __launch_bounds__(loss_tile::THREADS)
ce_forward_f32(const float* __restrict__ logits, const unsigned* __restrict__ targets,
               float* __restrict__ loss, int batch, int classes) {
  __shared__ float scratch[loss_tile::THREADS / SVLP_WARP];
  const int b = blockIdx.x;
  if (b >= batch) return;
  const float* x = logits + (size_t)b * classes;
  const float lse = svlp_row_logsumexp(x, classes, scratch);
  const unsigned t = targets[b];
  if (threadIdx.x == 0) loss[b] = t < (unsigned)classes ? lse - x[t] : NAN;
}

extern "C" __global__ void __launch_bounds__(loss_tile::THREADS)
ce_backward_f32(const float* __restrict__ logits, const unsigned* __restrict__ targets,
                const float* __restrict__ dloss, float* __restrict__ dlogits, int batch,
                int classes) {
  __shared__ float scratch[loss_tile::THREADS / SVLP_WARP];
  const int b = blockIdx.x;
  if (b >= batch) return;
  const float* x = logits + (size_t)b * classes;
  float* dx = dlogits + (size_t)b * classes;
  const float lse = svlp_row_logsumexp(x, classes, scratch);
  const unsigned t = targets[b];
  const float d = t < (unsigned)classes ? dloss[b] : NAN;
  for (int i = threadIdx.x; i < classes; i += blockDim.x) {
    const float p = d * expf(x[i] - lse);
    dx[i] = (unsigned)i == t ? p - d : p;
  }
}
