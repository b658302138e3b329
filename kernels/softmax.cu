// Softmax over the last dimension with an optional additive mask, and its backward, as
// src/ops/softmax.rs: x is [rows, n]; the mask is [g, n] and row r adds mask row
// r / rows_per_mask_row (attention scores [B, H, Tq, Tk] with a key-padding mask [B, Tk]
// use rows_per_mask_row = H·Tq). Rows are computed stably (the row maximum is subtracted);
// a row whose every entry is −∞ becomes all zeros.
//
// Work split
//   grid ceil(rows / ROWS_PER_BLOCK); block THREADS = 256 = 8 warps; a warp owns one row,
//   lanes stride it by 32 (coalesced). Forward: three passes over the row (maximum of
//   x + mask, Σ e^(v − max), then y = e^(v − max) · (1 / Σ)); backward: two passes
//   (Σ y·dy, then dx = y · (dy − Σ)). Reductions are warp butterflies (deterministic).
//   In-place use (y = x, dx = dy) is allowed: a lane rewrites only elements it read.
#include "common.cuh"

namespace softmax_tile {
constexpr int THREADS = 256;                         // threads per block
constexpr int ROWS_PER_BLOCK = THREADS / SVLP_WARP;  // one warp per row
}  // namespace softmax_tile

// y = softmax(x + mask[r / rows_per_mask_row]) per row; with has_mask == 0 the mask
// argument is ignored (pass any buffer).
extern "C" __global__ void __launch_bounds__(softmax_tile::THREADS)
softmax_forward_f32(const float* x, const float* __restrict__ mask, float* y, int rows, int n,
                    int has_mask, int rows_per_mask_row) {
  using namespace softmax_tile;
  const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / SVLP_WARP;
  const int lane = threadIdx.x % SVLP_WARP;
  if (row >= rows) return;
  const float* xr = x + (size_t)row * n;
  float* yr = y + (size_t)row * n;
  const float* mr = has_mask ? mask + (size_t)(row / rows_per_mask_row) * n : nullptr;

  float m = -INFINITY;
  for (int i = lane; i < n; i += SVLP_WARP) m = fmaxf(m, mr ? xr[i] + mr[i] : xr[i]);
  m = svlp_warp_max(m);
  if (m == -INFINITY) {
    // Every entry is −∞: no distribution exists; the row gets no weight at all.
    for (int i = lane; i < n; i += SVLP_WARP) yr[i] = 0.f;
    return;
  }
  float s = 0.f;
  for (int i = lane; i < n; i += SVLP_WARP) s += expf((mr ? xr[i] + mr[i] : xr[i]) - m);
  const float inv = 1.f / svlp_warp_sum(s);
  for (int i = lane; i < n; i += SVLP_WARP) yr[i] = expf((mr ? xr[i] + mr[i] : xr[i]) - m) * inv;
}

// dx = y · (dy − Σ y·dy) per row.
extern "C" __global__ void __launch_bounds__(softmax_tile::THREADS)
softmax_backward_f32(const float* __restrict__ y, const float* dy, float* dx, int rows, int n) {
  using namespace softmax_tile;
  const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / SVLP_WARP;
  const int lane = threadIdx.x % SVLP_WARP;
  if (row >= rows) return;
  const size_t off = (size_t)row * n;
  float dot = 0.f;
  for (int i = lane; i < n; i += SVLP_WARP) dot += y[off + i] * dy[off + i];
  dot = svlp_warp_sum(dot);
  for (int i = lane; i < n; i += SVLP_WARP) dx[off + i] = y[off + i] * (dy[off + i] - dot);
}
