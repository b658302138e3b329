// Layer normalisation over the last dimension (as src/ops/layernorm.rs and PyTorch's
// nn.LayerNorm): y = (x − mean) · rstd · gamma + beta with rstd = 1/√(var + eps) and the
// biased variance. f32, x and y [rows, n], gamma and beta [n], saved mean and rstd [rows].
//
// Work split
//   layernorm_forward_f32, layernorm_backward_dx_f32:
//     grid ceil(rows / ROWS_PER_BLOCK); block THREADS = 256 = 8 warps; a warp owns one row.
//     Lanes stride the row by 32 elements (float4s, stride 128, when n % 4 == 0 and the
//     rows are 16-byte aligned). The forward makes three passes over its row (mean, then
//     the centred variance Σ(x − mean)² as the CPU does, then the output), reductions by
//     warp butterflies; the backward two (Σ ĝ and Σ ĝ·(x − mean) with ĝ = dy·gamma, then dx).
//   layernorm_backward_params_f32: pass 1 of the deterministic column reduction of
//     bias_gelu.cu (block (32, 8) threads owns 32 columns of a chunk of rows) producing
//     both sums at once: partial[chunk, col] = Σ dy·x̂ (dgamma) and
//     partial[chunk, n + col] = Σ dy (dbeta), partial being [chunks, 2n]. Pass 2 is
//     column_sum_finish_f32 (bias_gelu.cu) with ld = 2n, once per half. No atomics: dgamma
//     and dbeta are deterministic.
#include "common.cuh"

namespace layernorm_tile {
constexpr int THREADS = 256;                      // threads per block of the row kernels
constexpr int ROWS_PER_BLOCK = THREADS / SVLP_WARP;  // one warp per row
}  // namespace layernorm_tile

// Σ f(i) over this lane's elements of a row of n, vectorised when `vec` (f gets the index
// of 4 consecutive elements and returns their contribution) — see the work split.
template <typename F4, typename F1>
static __device__ __forceinline__ float svlp_row_sum(int n, bool vec, F4 f4, F1 f1) {
  const int lane = threadIdx.x % SVLP_WARP;
  float s = 0.f;
  if (vec) {
    for (int i = lane * 4; i < n; i += SVLP_WARP * 4) s += f4(i);
  } else {
    for (int i = lane; i < n; i += SVLP_WARP) s += f1(i);
  }
  return svlp_warp_sum(s);
}

extern "C" __global__ void __launch_bounds__(layernorm_tile::THREADS)
layernorm_forward_f32(const float* __restrict__ x, const float* __restrict__ gamma,
                      const float* __restrict__ beta, float* __restrict__ y,
                      float* __restrict__ mean_out, float* __restrict__ rstd_out, int rows,
                      int n, float eps) {
  using namespace layernorm_tile;
  const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / SVLP_WARP;
  const int lane = threadIdx.x % SVLP_WARP;
  if (row >= rows) return;
  const float* xr = x + (size_t)row * n;
  float* yr = y + (size_t)row * n;
  const bool vec = n % 4 == 0 && svlp_aligned16(x) && svlp_aligned16(y) &&
                   svlp_aligned16(gamma) && svlp_aligned16(beta);
  const float inv_n = 1.f / (float)n;

  const float mean = svlp_row_sum(
                         n, vec,
                         [&](int i) {
                           const float4 v = *reinterpret_cast<const float4*>(xr + i);
                           return (v.x + v.y) + (v.z + v.w);
                         },
                         [&](int i) { return xr[i]; }) *
                     inv_n;
  const float var = svlp_row_sum(
                        n, vec,
                        [&](int i) {
                          const float4 v = *reinterpret_cast<const float4*>(xr + i);
                          const float a = v.x - mean, b = v.y - mean, c = v.z - mean,
                                      d = v.w - mean;
                          return (a * a + b * b) + (c * c + d * d);
                        },
                        [&](int i) {
                          const float a = xr[i] - mean;
                          return a * a;
                        }) *
                    inv_n;
  const float rstd = 1.f / sqrtf(var + eps);
  if (vec) {
    for (int i = lane * 4; i < n; i += SVLP_WARP * 4) {
      const float4 v = *reinterpret_cast<const float4*>(xr + i);
      const float4 g = *reinterpret_cast<const float4*>(gamma + i);
      const float4 b = *reinterpret_cast<const float4*>(beta + i);
      *reinterpret_cast<float4*>(yr + i) =
          make_float4((v.x - mean) * rstd * g.x + b.x, (v.y - mean) * rstd * g.y + b.y,
                      (v.z - mean) * rstd * g.z + b.z, (v.w - mean) * rstd * g.w + b.w);
    }
  } else {
    for (int i = lane; i < n; i += SVLP_WARP) yr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

// dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)) with ĝ = dy · gamma, x̂ = (x − mean) · rstd.
extern "C" __global__ void __launch_bounds__(layernorm_tile::THREADS)
layernorm_backward_dx_f32(const float* __restrict__ x, const float* __restrict__ gamma,
                          const float* __restrict__ mean_in, const float* __restrict__ rstd_in,
                          const float* __restrict__ dy, float* __restrict__ dx, int rows, int n) {
  using namespace layernorm_tile;
  const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / SVLP_WARP;
  const int lane = threadIdx.x % SVLP_WARP;
  if (row >= rows) return;
  const size_t off = (size_t)row * n;
  const float *xr = x + off, *gr = dy + off;
  float* dxr = dx + off;
  const bool vec = n % 4 == 0 && svlp_aligned16(x) && svlp_aligned16(dy) &&
                   svlp_aligned16(dx) && svlp_aligned16(gamma);
  const float mean = mean_in[row], rstd = rstd_in[row];
  const float inv_n = 1.f / (float)n;

  // Both sums in one pass: mean of ĝ and of ĝ·(x − mean).
  float s_g = 0.f, s_gx = 0.f;
  if (vec) {
    for (int i = lane * 4; i < n; i += SVLP_WARP * 4) {
      const float4 v = *reinterpret_cast<const float4*>(xr + i);
      const float4 d = *reinterpret_cast<const float4*>(gr + i);
      const float4 g = *reinterpret_cast<const float4*>(gamma + i);
      const float a = d.x * g.x, b = d.y * g.y, c = d.z * g.z, e = d.w * g.w;
      s_g += (a + b) + (c + e);
      s_gx += (a * (v.x - mean) + b * (v.y - mean)) + (c * (v.z - mean) + e * (v.w - mean));
    }
  } else {
    for (int i = lane; i < n; i += SVLP_WARP) {
      const float a = gr[i] * gamma[i];
      s_g += a;
      s_gx += a * (xr[i] - mean);
    }
  }
  const float mean_g = svlp_warp_sum(s_g) * inv_n;
  const float mean_gx = svlp_warp_sum(s_gx) * rstd * inv_n;
  if (vec) {
    for (int i = lane * 4; i < n; i += SVLP_WARP * 4) {
      const float4 v = *reinterpret_cast<const float4*>(xr + i);
      const float4 d = *reinterpret_cast<const float4*>(gr + i);
      const float4 g = *reinterpret_cast<const float4*>(gamma + i);
      *reinterpret_cast<float4*>(dxr + i) =
          make_float4(rstd * (d.x * g.x - mean_g - (v.x - mean) * rstd * mean_gx),
                      rstd * (d.y * g.y - mean_g - (v.y - mean) * rstd * mean_gx),
                      rstd * (d.z * g.z - mean_g - (v.z - mean) * rstd * mean_gx),
                      rstd * (d.w * g.w - mean_g - (v.w - mean) * rstd * mean_gx));
    }
  } else {
    for (int i = lane; i < n; i += SVLP_WARP) {
      dxr[i] = rstd * (gr[i] * gamma[i] - mean_g - (xr[i] - mean) * rstd * mean_gx);
    }
  }
}

// Pass 1 of dgamma and dbeta: partial[chunk, col] = Σ dy·(x − mean)·rstd and
// partial[chunk, n + col] = Σ dy over the chunk's rows (partial is [chunks, 2n]).
extern "C" __global__ void __launch_bounds__(SVLP_COLSUM_COLS * SVLP_COLSUM_ROW_THREADS)
layernorm_backward_params_f32(const float* __restrict__ x, const float* __restrict__ mean_in,
                              const float* __restrict__ rstd_in, const float* __restrict__ dy,
                              float* __restrict__ partial, int rows, int n,
                              int rows_per_chunk) {
  float* const out[2] = {partial, partial + n};
  svlp_column_partial<2>(out, 2 * n, rows, n, rows_per_chunk, [&](int r, int c, float* v) {
    const size_t i = (size_t)r * n + c;
    const float d = dy[i];
    v[0] = d * (x[i] - mean_in[r]) * rstd_in[r];
    v[1] = d;
  });
}
