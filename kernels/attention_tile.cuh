// The f32 tile helpers shared by the flash-attention kernels (attention.cu,
// block_sparse_attention.cu): a 128-thread block seen as a 16 × 8 grid (ty = t / 8 owns
// rows ty, ty + 16, …; tx = t % 8 owns columns tx, tx + 8, …; the 8 threads of a row are
// consecutive lanes, so row reductions are 8-lane butterflies), loads of one head's rows
// of a [B, T, H·D] activation into shared memory, register-tiled products of shared
// tiles, and stores of register tiles.
#pragma once

#include "common.cuh"

namespace attention_tile {
constexpr int THREADS = 128;  // threads per block
constexpr int RG = 16;        // thread rows (ty)
constexpr int CG = 8;         // thread columns (tx): 8 consecutive lanes share a row
constexpr int PAD_P = 8;      // padding of score tiles (P, dS) rows
static_assert(RG * CG == THREADS, "16 x 8 thread grid");
}  // namespace attention_tile

// Pointer to row `t`, head `h` of a [B, T, H·D] activation of batch b.
static __device__ __forceinline__ size_t attn_row(int b, int t, int T, int h, int H, int D) {
  return ((size_t)b * T + t) * (size_t)(H * D) + (size_t)h * D;
}

// tile[r][c] (row stride SD) = rows row0.. of head h of a [B, T, H·D] activation, columns
// c < DMAX; zero outside (rows ≥ T, columns ≥ D).
template <int ROWS, int DMAX, int SD>
static __device__ __forceinline__ void attn_load(float* tile, const float* __restrict__ src,
                                                 int b, int h, int row0, int T, int H, int D) {
  for (int idx = threadIdx.x; idx < ROWS * DMAX; idx += attention_tile::THREADS) {
    const int r = idx / DMAX, c = idx % DMAX, row = row0 + r;
    tile[r * SD + c] = (row < T && c < D) ? src[attn_row(b, row, T, h, H, D) + c] : 0.f;
  }
}

// acc[i][j] += Σ_{k < kn} A(ty + 16i, k) · B(k, tx + 8j) with A(r, k) = a[r·LDA + k] and
// B(k, c) = bm[c·BROW + k·BCOL] (shared-memory operands; see the work split).
template <int TR, int TC, int LDA, int BROW, int BCOL>
static __device__ __forceinline__ void attn_mm(float (&acc)[TR][TC], const float* a,
                                               const float* bm, int kn) {
  using namespace attention_tile;
  const int ty = threadIdx.x / CG, tx = threadIdx.x % CG;
#pragma unroll 4
  for (int k = 0; k < kn; ++k) {
    float av[TR], bv[TC];
#pragma unroll
    for (int i = 0; i < TR; ++i) av[i] = a[(ty + i * RG) * LDA + k];
#pragma unroll
    for (int j = 0; j < TC; ++j) bv[j] = bm[(tx + j * CG) * BROW + k * BCOL];
#pragma unroll
    for (int i = 0; i < TR; ++i)
#pragma unroll
      for (int j = 0; j < TC; ++j) acc[i][j] += av[i] * bv[j];
  }
}

template <int TR, int TC>
static __device__ __forceinline__ void attn_zero(float (&acc)[TR][TC]) {
#pragma unroll
  for (int i = 0; i < TR; ++i)
#pragma unroll
    for (int j = 0; j < TC; ++j) acc[i][j] = 0.f;
}

// Writes a register tile (rows row0 + ty + 16i, columns tx + 8j < D) times `mul` to head h
// of a [B, T, H·D] activation.
template <int TR, int TC>
static __device__ __forceinline__ void attn_store(const float (&acc)[TR][TC], float mul,
                                                  float* __restrict__ dst, int b, int h,
                                                  int row0, int T, int H, int D) {
  using namespace attention_tile;
  const int ty = threadIdx.x / CG, tx = threadIdx.x % CG;
#pragma unroll
  for (int i = 0; i < TR; ++i) {
    const int row = row0 + ty + i * RG;
    if (row >= T) continue;
    float* out = dst + attn_row(b, row, T, h, H, D);
#pragma unroll
    for (int j = 0; j < TC; ++j) {
      const int c = tx + j * CG;
      if (c < D) out[c] = acc[i][j] * mul;
    }
  }
}

// The additive mask of key `key` (−∞ past the last key).
// Dropout on the probabilities (as src/ops/attention.rs): the factor of probability
// (b, h, query, key) — 1/(1 − p) when kept, 0 when dropped, with the mask counter
// ((b·H + h)·Tq + query)·Tk + key; exactly 1 when dropout is off (threshold 0).
struct AttnDropout {
  unsigned long long seed;
  unsigned threshold;
  float scale;
};

static __device__ __forceinline__ float attn_drop(const AttnDropout& dr, int b, int h, int H,
                                                  int query, int Tq, int key, int Tk) {
  if (dr.threshold == 0) return 1.f;
  const unsigned long long i =
      (((unsigned long long)b * H + h) * Tq + query) * (unsigned long long)Tk + key;
  return svlp_dropout_keep(dr.seed, i, dr.threshold) ? dr.scale : 0.f;
}

static __device__ __forceinline__ float attn_key_bias(const float* __restrict__ mask, int has_mask,
                                                      int b, int key, int Tk) {
  if (key >= Tk) return -INFINITY;
  return has_mask ? mask[(size_t)b * Tk + key] : 0.f;
}
