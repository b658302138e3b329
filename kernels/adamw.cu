// AdamW step with f32 master weights, bit-for-bit the update of src/ops/adamw.rs (same
// operations in the same order, every product and sum rounded separately — no FMA
// contraction, see svlp_mul/svlp_add in common.cuh):
//   p ← p · decay                               (decay = 1 − lr·wd)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + ((1 − β2)·g)·g
//   p ← p − (step_size · m) / (√v / bias2_sqrt + eps)
// with step_size = lr / (1 − β1^t) and bias2_sqrt = √(1 − β2^t) computed by the launcher in
// f64 and rounded to f32, as the CPU op does. adamw_f32_bf16 also writes a bf16 copy of
// the updated weights (round to nearest even) for mixed-precision forward passes.
//
// Work split
//   grid-stride over the `count` parameters; a thread owns one parameter per step
//   (THREADS = 256 per block, any grid).
#include "common.cuh"

namespace adamw_tile {
constexpr int THREADS = 256;  // threads per block
}  // namespace adamw_tile

// One parameter's update; returns the new weight.
static __device__ __forceinline__ float svlp_adamw_one(float* __restrict__ p,
                                                       const float* __restrict__ g,
                                                       float* __restrict__ m,
                                                       float* __restrict__ v, size_t i,
                                                       float decay, float beta1, float beta2,
                                                       float step_size, float bias2_sqrt,
                                                       float eps) {
  const float gi = g[i];
  float pi = svlp_mul(p[i], decay);
  const float mi = svlp_add(svlp_mul(beta1, m[i]), svlp_mul(svlp_sub(1.f, beta1), gi));
  const float vi =
      svlp_add(svlp_mul(beta2, v[i]), svlp_mul(svlp_mul(svlp_sub(1.f, beta2), gi), gi));
  pi = svlp_sub(pi, svlp_mul(step_size, mi) / svlp_add(sqrtf(vi) / bias2_sqrt, eps));
  m[i] = mi;
  v[i] = vi;
  p[i] = pi;
  return pi;
}

extern "C" __global__ void __launch_bounds__(adamw_tile::THREADS)
adamw_f32(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
          float* __restrict__ v, int count, float decay, float beta1, float beta2,
          float step_size, float bias2_sqrt, float eps) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)count;
       i += (size_t)gridDim.x * blockDim.x) {
    svlp_adamw_one(p, g, m, v, i, decay, beta1, beta2, step_size, bias2_sqrt, eps);
  }
}

extern "C" __global__ void __launch_bounds__(adamw_tile::THREADS)
adamw_f32_bf16(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
               float* __restrict__ v, __nv_bfloat16* __restrict__ p_bf16, int count,
               float decay, float beta1, float beta2, float step_size, float bias2_sqrt,
               float eps) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)count;
       i += (size_t)gridDim.x * blockDim.x) {
    p_bf16[i] = __float2bfloat16(
        svlp_adamw_one(p, g, m, v, i, decay, beta1, beta2, step_size, bias2_sqrt, eps));
  }
}
