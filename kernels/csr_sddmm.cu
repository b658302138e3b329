// Sampled dense-dense product (SDDMM) for CSR, f32: the weight gradient of a CSR linear
// layer at its stored entries only. For stored entry e at (row_idx[e], col_idx[e]):
//   out[e] = Σ_t a[row_idx[e], t] · b[col_idx[e], t]
// with a = dYᵀ [rows, tokens] (lda) and b = Xᵀ [cols, tokens] (ldb): both transposed so the
// token dimension of a dot product is contiguous (the launcher transposes on the device).
//
// Work split (csr_sddmm_f32)
//   grid-stride over entries, one warp per entry: grid (ceil(nnz / WARPS) capped),
//   block THREADS = 128 = WARPS warps.
//   thread tokens lane·VEC + j·32·VEC of both rows, 16-byte loads when both leading
//          dimensions are multiples of 4 and the bases aligned, scalar loads otherwise;
//          the warp's partial sums are added by a butterfly (fixed order: deterministic).
#include "common.cuh"

namespace csr_sddmm_tile {
constexpr int THREADS = 128;  // threads per block
constexpr int WARPS = THREADS / SVLP_WARP;
constexpr int VEC = 4;        // tokens per load
}  // namespace csr_sddmm_tile

// out[e] = dot(a[row_idx[e], :tokens], b[col_idx[e], :tokens]) for e < nnz.
extern "C" __global__ void __launch_bounds__(csr_sddmm_tile::THREADS)
csr_sddmm_f32(const unsigned* __restrict__ row_idx, const unsigned* __restrict__ col_idx,
    int nnz, const float* __restrict__ a, int lda, const float* __restrict__ b, int ldb,
    int tokens, float* __restrict__ out) {
  using namespace csr_sddmm_tile;
  const int lane = threadIdx.x % SVLP_WARP;
  const bool vec = lda % VEC == 0 && ldb % VEC == 0 && svlp_aligned16(a) && svlp_aligned16(b);
  const int step = gridDim.x * WARPS;
  for (int e = blockIdx.x * WARPS + threadIdx.x / SVLP_WARP; e < nnz; e += step) {
    const float* ar = a + (size_t)row_idx[e] * lda;
    const float* br = b + (size_t)col_idx[e] * ldb;
    float sum = 0.f;
    for (int t = lane * VEC; t < tokens; t += SVLP_WARP * VEC) {
      if (vec && t + VEC <= tokens) {
        const float4 x = *reinterpret_cast<const float4*>(ar + t);
        const float4 y = *reinterpret_cast<const float4*>(br + t);
        sum += x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
      } else {
        for (int j = t; j < min(t + VEC, tokens); ++j) sum += ar[j] * br[j];
      }
    }
    sum = svlp_warp_sum(sum);
    if (lane == 0) out[e] = sum;
  }
}
