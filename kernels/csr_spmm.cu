// CSR sparse × dense product in the style of Sputnik (Gale et al., SC'20), f32:
// C = A·Bd with A a CSR matrix [m, k] and Bd a dense row-major [k, n] (leading dimension
// ldb), C dense row-major [m, n] (ldc). The linear layer uses it as Yᵀ = W·Xᵀ (A = W,
// Bd = Xᵀ [cols, tokens]) and dXᵀ = Wᵀ·dYᵀ (A = the CSC of W built at upload, Bd = dYᵀ
// [rows, tokens]): with the dense operand transposed so that tokens are contiguous, every
// nonzero's dense row is one coalesced strip.
//
// Work split (csr_spmm_f32_g{8,16,32}; G = subwarp width, picked by the launcher)
//   grid   (ceil(m / WORKERS), ceil(n / (G·VEC))), WORKERS = THREADS / G.
//   block  THREADS = 128 threads = WORKERS subwarps of G lanes; all subwarps of a block
//          share one strip of G·VEC output columns (1-D tiling of C).
//   subwarp one row of A × the strip: rows are handed out in `row_order` (longest first,
//          the row swizzle: a block's rows have similar lengths and heavy rows start
//          early), results go to the original row. The row's nonzeros are read G at a
//          time, one (value, column) per lane, and broadcast by subwarp shuffles.
//   thread VEC = 4 consecutive output columns in registers; per nonzero one 16-byte load
//          of the dense row when ldb is a multiple of 4, the base is aligned and the four
//          columns are in bounds, scalar loads otherwise (ragged tail). Stores likewise.
//   Subwarp tiling: narrow strips (few tokens) or short rows use G = 8 or 16 so that a
//   warp works on 4 or 2 rows at once instead of idling lanes.
#include "common.cuh"

namespace csr_spmm_tile {
constexpr int THREADS = 128;  // threads per block
constexpr int VEC = 4;        // output columns per thread (one float4)
}  // namespace csr_spmm_tile

// Four floats of row p at columns n.. (zero past `n_cols`); one 16-byte load when `vec`.
static __device__ __forceinline__ float4 csr_load4(const float* p, int n, int n_cols,
                                                   bool vec) {
  if (vec && n + 3 < n_cols) return *reinterpret_cast<const float4*>(p + n);
  float e[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) e[j] = n + j < n_cols ? p[n + j] : 0.f;
  return make_float4(e[0], e[1], e[2], e[3]);
}

template <int G>
static __device__ __forceinline__ void csr_spmm_body(
    const unsigned* __restrict__ row_ptr, const unsigned* __restrict__ col_idx,
    const float* __restrict__ values, const unsigned* __restrict__ row_order, int m,
    const float* __restrict__ bd, int ldb, float* __restrict__ c, int ldc, int n) {
  using namespace csr_spmm_tile;
  constexpr int WORKERS = THREADS / G;
  const int worker = threadIdx.x / G, lane = threadIdx.x % G;
  const int slot = blockIdx.x * WORKERS + worker;
  if (slot >= m) return;  // the whole subwarp leaves together
  // The subwarp's lanes within its warp (all 32 for G = 32).
  const unsigned mask =
      G == 32 ? SVLP_FULL_MASK : ((1u << G) - 1u) << ((threadIdx.x % SVLP_WARP) / G * G);
  const int row = (int)row_order[slot];
  const int col0 = blockIdx.y * G * VEC + lane * VEC;
  const bool vec_b = ldb % VEC == 0 && svlp_aligned16(bd);
  const int begin = (int)row_ptr[row], end = (int)row_ptr[row + 1];

  float acc[VEC] = {0.f, 0.f, 0.f, 0.f};
  for (int base = begin; base < end; base += G) {
    const int count = min(G, end - base);
    const float my_v = lane < count ? values[base + lane] : 0.f;
    const int my_c = lane < count ? (int)col_idx[base + lane] : 0;
    for (int j = 0; j < count; ++j) {
      const float v = __shfl_sync(mask, my_v, j, G);
      const int k = __shfl_sync(mask, my_c, j, G);
      if (col0 < n) {
        const float4 b = csr_load4(bd + (size_t)k * ldb, col0, n, vec_b);
        acc[0] += v * b.x;
        acc[1] += v * b.y;
        acc[2] += v * b.z;
        acc[3] += v * b.w;
      }
    }
  }
  if (col0 >= n) return;
  float* out = c + (size_t)row * ldc + col0;
  if (ldc % VEC == 0 && svlp_aligned16(c) && col0 + 3 < n) {
    *reinterpret_cast<float4*>(out) = make_float4(acc[0], acc[1], acc[2], acc[3]);
  } else {
#pragma unroll
    for (int j = 0; j < VEC; ++j)
      if (col0 + j < n) out[j] = acc[j];
  }
}

// C = A·Bd with 8-lane subwarps (16 rows per block, strips of 32 columns).
extern "C" __global__ void __launch_bounds__(csr_spmm_tile::THREADS)
csr_spmm_f32_g8(const unsigned* __restrict__ row_ptr, const unsigned* __restrict__ col_idx,
    const float* __restrict__ values, const unsigned* __restrict__ row_order, int m,
    const float* __restrict__ bd, int ldb, float* __restrict__ c, int ldc, int n) {
  csr_spmm_body<8>(row_ptr, col_idx, values, row_order, m, bd, ldb, c, ldc, n);
}

// C = A·Bd with 16-lane subwarps (8 rows per block, strips of 64 columns).
extern "C" __global__ void __launch_bounds__(csr_spmm_tile::THREADS)
csr_spmm_f32_g16(const unsigned* __restrict__ row_ptr, const unsigned* __restrict__ col_idx,
    const float* __restrict__ values, const unsigned* __restrict__ row_order, int m,
    const float* __restrict__ bd, int ldb, float* __restrict__ c, int ldc, int n) {
  csr_spmm_body<16>(row_ptr, col_idx, values, row_order, m, bd, ldb, c, ldc, n);
}

// C = A·Bd with full warps (4 rows per block, strips of 128 columns).
extern "C" __global__ void __launch_bounds__(csr_spmm_tile::THREADS)
csr_spmm_f32_g32(const unsigned* __restrict__ row_ptr, const unsigned* __restrict__ col_idx,
    const float* __restrict__ values, const unsigned* __restrict__ row_order, int m,
    const float* __restrict__ bd, int ldb, float* __restrict__ c, int ldc, int n) {
  csr_spmm_body<32>(row_ptr, col_idx, values, row_order, m, bd, ldb, c, ldc, n);
}
