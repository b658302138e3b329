// Flash-style multi-head attention, f32, forward and backward, as src/ops/attention.rs:
// out = dropout(softmax(Q·Kᵀ·scale + mask))·V per (batch, head), with
// q [B, Tq, H·D], k and v [B, Tk, H·D], an optional additive key-padding mask [B, Tk]
// and out [B, Tq, H·D]. No Tq×Tk buffer exists anywhere: the forward streams key tiles
// with an online softmax and saves only the log-sum-exp of every query row
// (lse [B, H, Tq]); the backward recomputes the probabilities P = e^(S − lse) from it.
// A query row whose every score is −∞ gets a zero output and lse = −∞ (as the CPU op).
// Dropout on the probabilities (the f32 kernels; off when drop_threshold = 0) draws the
// CPU op's counter-based mask (attn_drop in attention_tile.cuh): the forward scales the
// P tile by it after the row sums (lse stays the undropped softmax's), the backward
// applies it to P in dV += P̃ᵀ·dO and to dP before dS = P·(dP̃ − Δ) (Δ = Σ dO·O holds
// unchanged because O is built from the dropped probabilities).
//
// Head dimensions up to 128, in two tile configurations picked by the launcher:
// `d64` kernels take D ≤ 64, `d128` kernels D ≤ 128 (columns past D are zero-padded).
// Every tile lives in static shared memory (< 48 KiB, no opt-in needed), rows padded to an
// odd stride (DMAX + 1) so that walking a column is bank-conflict free.
//
// Work split (THREADS = 128 threads per block, seen as a 16 × 8 grid: ty = t / 8 owns
// rows ty, ty + 16, ty + 32, … of every row-tiled product, tx = t % 8 owns columns
// tx, tx + 8, …; the 8 threads sharing a row are 8 consecutive lanes, so row reductions
// are 8-lane butterflies)
//   attention_forward_{d64,d128}_f32
//     grid (ceil(Tq / BQ), H, B); a block owns BQ query rows of one (batch, head) and
//     walks the keys in tiles of BKV: S = Q·Kᵀ (thread: (BQ/16)×(BKV/8) scores in
//     registers) → scale, mask → online softmax (running max m and sum l per row, in the
//     registers of the row's 8 threads; the output rows are rescaled in place) → P to
//     shared memory → O += P·V (thread: (BQ/16)×(DMAX/8) outputs in registers).
//     d64: BQ = 64, BKV = 32, K and V tiles loaded together. d128: BQ = 32, BKV = 32, K and
//     V share one buffer (V is loaded once S is done).
//   attention_backward_dot_f32
//     Δ[b, h, q] = Σ_d dO·O (one warp per query row and head; 8 rows per block).
//   attention_backward_dkdv_{d64,d128}_f32
//     grid (ceil(Tk / BKV), H, B); a block owns BKV keys of one (batch, head) and walks the
//     queries in tiles of BQ: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (rows = keys), P = e^(S·scale + mask
//     − lse), dS = P·(dP − Δ) to shared memory, then dV += Pᵀ·dO and dK += dSᵀ·Q (thread:
//     (BKV/16)×(DMAX/8) of each in registers); dK is scaled once at the end.
//   attention_backward_dq_{d64,d128}_f32
//     grid (ceil(Tq / BQ), H, B); a block owns BQ queries and walks the keys: S, dP, dS as
//     above (rows = queries), then dQ += dS·K.
//   dQ is computed by its own kernel instead of atomics across key blocks, so every
//   gradient is deterministic (the price: S and dP are computed twice).
//   d64 backward tiles: BQ = BKV = 32; d128: BQ = BKV = 16.
#include "attention_tile.cuh"

namespace attention_tile {
// Forward tiles for head dims ≤ 64 and ≤ 128.
constexpr int FWD64_BQ = 64, FWD64_BKV = 32;
constexpr int FWD128_BQ = 32, FWD128_BKV = 32;
// Backward tiles (the dK/dV and the dQ kernels use the same sizes).
constexpr int BWD64_BQ = 32, BWD64_BKV = 32;
constexpr int BWD128_BQ = 16, BWD128_BKV = 16;
// Rows of the Δ kernel per block (one warp per row).
constexpr int DOT_ROWS = THREADS / SVLP_WARP;
}  // namespace attention_tile

// ---------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------
template <int DMAX, int BQ, int BKV, bool SHARE_KV>
static __device__ __forceinline__ void attn_forward(const float* __restrict__ q,
                                                    const float* __restrict__ k,
                                                    const float* __restrict__ v,
                                                    const float* __restrict__ mask,
                                                    float* __restrict__ out,
                                                    float* __restrict__ lse, int H, int Tq,
                                                    int Tk, int D, int has_mask, float scale,
                                                    AttnDropout dr) {
  using namespace attention_tile;
  constexpr int SD = DMAX + 1;          // row stride of [rows][DMAX] tiles
  constexpr int SP = BKV + PAD_P;       // row stride of the P tile
  constexpr int TR = BQ / RG;           // query rows per thread
  constexpr int TS = BKV / CG;          // score columns per thread
  constexpr int TO = DMAX / CG;         // output columns per thread
  __shared__ float Qs[BQ * SD];
  __shared__ float Ks[BKV * SD];
  __shared__ float Vs_own[SHARE_KV ? 1 : BKV * SD];
  __shared__ float Ps[BQ * SP];
  float* Vs = SHARE_KV ? Ks : Vs_own;

  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
  const int ty = threadIdx.x / CG, tx = threadIdx.x % CG;
  attn_load<BQ, DMAX, SD>(Qs, q, b, h, q0, Tq, H, D);

  float o[TR][TO];
  attn_zero(o);
  float m[TR], l[TR];
#pragma unroll
  for (int i = 0; i < TR; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.f;
  }

  for (int k0 = 0; k0 < Tk; k0 += BKV) {
    attn_load<BKV, DMAX, SD>(Ks, k, b, h, k0, Tk, H, D);
    if (!SHARE_KV) attn_load<BKV, DMAX, SD>(Vs, v, b, h, k0, Tk, H, D);
    __syncthreads();

    float s[TR][TS];
    attn_zero(s);
    attn_mm<TR, TS, SD, SD, 1>(s, Qs, Ks, D);
    float bias[TS];
#pragma unroll
    for (int j = 0; j < TS; ++j) bias[j] = attn_key_bias(mask, has_mask, b, k0 + tx + j * CG, Tk);

#pragma unroll
    for (int i = 0; i < TR; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < TS; ++j) {
        s[i][j] = s[i][j] * scale + bias[j];
        mx = fmaxf(mx, s[i][j]);
      }
      mx = svlp_group_max<CG>(mx);
      const float m_new = fmaxf(m[i], mx);
      // Until a finite score is seen the row has no mass: keep it at zero.
      const float alpha = m_new == -INFINITY ? 1.f : expf(m[i] - m_new);
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < TS; ++j) {
        const float p = m_new == -INFINITY ? 0.f : expf(s[i][j] - m_new);
        s[i][j] = p;
        sum += p;
      }
      sum = svlp_group_sum<CG>(sum);
      l[i] = l[i] * alpha + sum;
      m[i] = m_new;
#pragma unroll
      for (int j = 0; j < TO; ++j) o[i][j] *= alpha;
#pragma unroll
      for (int j = 0; j < TS; ++j)
        Ps[(ty + i * RG) * SP + tx + j * CG] =
            s[i][j] * attn_drop(dr, b, h, H, q0 + ty + i * RG, Tq, k0 + tx + j * CG, Tk);
    }
    __syncthreads();
    if (SHARE_KV) {
      attn_load<BKV, DMAX, SD>(Vs, v, b, h, k0, Tk, H, D);
      __syncthreads();
    }
    attn_mm<TR, TO, SP, 1, SD>(o, Ps, Vs, BKV);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TR; ++i) {
    const int row = q0 + ty + i * RG;
    if (row >= Tq) continue;
    const float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
    float* dst = out + attn_row(b, row, Tq, h, H, D);
#pragma unroll
    for (int j = 0; j < TO; ++j) {
      const int c = tx + j * CG;
      if (c < D) dst[c] = o[i][j] * inv;
    }
    if (tx == 0) lse[((size_t)b * H + h) * Tq + row] = l[i] > 0.f ? m[i] + logf(l[i]) : -INFINITY;
  }
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
attention_forward_d64_f32(const float* __restrict__ q, const float* __restrict__ k,
                          const float* __restrict__ v, const float* __restrict__ mask,
                          float* __restrict__ out, float* __restrict__ lse, int H, int Tq, int Tk,
                          int D, int has_mask, float scale,
    unsigned long long drop_seed, unsigned drop_threshold, float drop_scale) {
  using namespace attention_tile;
  attn_forward<64, FWD64_BQ, FWD64_BKV, false>(q, k, v, mask, out, lse, H, Tq, Tk, D, has_mask,
                                               scale,
      AttnDropout{drop_seed, drop_threshold, drop_scale});
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
attention_forward_d128_f32(const float* __restrict__ q, const float* __restrict__ k,
                           const float* __restrict__ v, const float* __restrict__ mask,
                           float* __restrict__ out, float* __restrict__ lse, int H, int Tq,
                           int Tk, int D, int has_mask, float scale,
    unsigned long long drop_seed, unsigned drop_threshold, float drop_scale) {
  using namespace attention_tile;
  attn_forward<128, FWD128_BQ, FWD128_BKV, true>(q, k, v, mask, out, lse, H, Tq, Tk, D,
                                                 has_mask, scale,
      AttnDropout{drop_seed, drop_threshold, drop_scale});
}

// ---------------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------------

// Δ[b, h, t] = Σ_d dout·out over head h of query row t (one warp per (b, t, h)).
extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
attention_backward_dot_f32(const float* __restrict__ out, const float* __restrict__ dout,
                           float* __restrict__ delta, int B, int H, int Tq, int D) {
  using namespace attention_tile;
  const int row = blockIdx.x * DOT_ROWS + threadIdx.x / SVLP_WARP;  // (b · Tq + t) · H + h
  const int lane = threadIdx.x % SVLP_WARP;
  if (row >= B * Tq * H) return;
  const int h = row % H, t = (row / H) % Tq, b = row / (H * Tq);
  const size_t off = (size_t)row * D;  // [B, Tq, H, D] is [B, Tq, H·D]
  float s = 0.f;
  for (int c = lane; c < D; c += SVLP_WARP) s += dout[off + c] * out[off + c];
  s = svlp_warp_sum(s);
  if (lane == 0) delta[((size_t)b * H + h) * Tq + t] = s;
}

// P = e^(s·scale + bias − lse) (0 when lse = −∞: a row without mass) and
// dS = P · (dP − Δ) for one score.
static __device__ __forceinline__ float attn_ds(float s, float dp, float scale, float bias,
                                                float row_lse, float row_delta, float* p_out) {
  const float p = row_lse == -INFINITY ? 0.f : expf(s * scale + bias - row_lse);
  *p_out = p;
  return p * (dp - row_delta);
}

template <int DMAX, int BQ, int BKV>
static __device__ __forceinline__ void attn_backward_dkdv(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ mask, const float* __restrict__ dout,
    const float* __restrict__ lse, const float* __restrict__ delta, float* __restrict__ dk,
    float* __restrict__ dv, int H, int Tq, int Tk, int D, int has_mask, float scale,
    AttnDropout dr) {
  using namespace attention_tile;
  constexpr int SD = DMAX + 1;
  constexpr int SP = BQ + PAD_P;   // row stride of the Pᵀ and dSᵀ tiles [BKV][BQ]
  constexpr int TR = BKV / RG;     // key rows per thread
  constexpr int TS = BQ / CG;      // query columns per thread
  constexpr int TO = DMAX / CG;    // head-dim columns per thread
  __shared__ float Ks[BKV * SD];
  __shared__ float Vs[BKV * SD];
  __shared__ float Qs[BQ * SD];
  __shared__ float dOs[BQ * SD];
  __shared__ float Pt[BKV * SP];
  __shared__ float dSt[BKV * SP];
  __shared__ float lse_s[BQ];
  __shared__ float delta_s[BQ];

  const int b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * BKV;
  const int ty = threadIdx.x / CG, tx = threadIdx.x % CG;
  attn_load<BKV, DMAX, SD>(Ks, k, b, h, k0, Tk, H, D);
  attn_load<BKV, DMAX, SD>(Vs, v, b, h, k0, Tk, H, D);
  float bias[TR];
#pragma unroll
  for (int i = 0; i < TR; ++i) bias[i] = attn_key_bias(mask, has_mask, b, k0 + ty + i * RG, Tk);

  float dk_acc[TR][TO], dv_acc[TR][TO];
  attn_zero(dk_acc);
  attn_zero(dv_acc);
  const size_t stat = ((size_t)b * H + h) * Tq;

  for (int q0 = 0; q0 < Tq; q0 += BQ) {
    attn_load<BQ, DMAX, SD>(Qs, q, b, h, q0, Tq, H, D);
    attn_load<BQ, DMAX, SD>(dOs, dout, b, h, q0, Tq, H, D);
    for (int r = threadIdx.x; r < BQ; r += THREADS) {
      const bool in = q0 + r < Tq;
      lse_s[r] = in ? lse[stat + q0 + r] : -INFINITY;
      delta_s[r] = in ? delta[stat + q0 + r] : 0.f;
    }
    __syncthreads();

    float s[TR][TS], dp[TR][TS];
    attn_zero(s);
    attn_zero(dp);
    attn_mm<TR, TS, SD, SD, 1>(s, Ks, Qs, D);
    attn_mm<TR, TS, SD, SD, 1>(dp, Vs, dOs, D);
#pragma unroll
    for (int i = 0; i < TR; ++i) {
#pragma unroll
      for (int j = 0; j < TS; ++j) {
        const int c = tx + j * CG;
        const float kd = attn_drop(dr, b, h, H, q0 + c, Tq, k0 + ty + i * RG, Tk);
        float p;
        const float ds =
            attn_ds(s[i][j], dp[i][j] * kd, scale, bias[i], lse_s[c], delta_s[c], &p);
        Pt[(ty + i * RG) * SP + c] = p * kd;
        dSt[(ty + i * RG) * SP + c] = ds;
      }
    }
    __syncthreads();
    attn_mm<TR, TO, SP, 1, SD>(dv_acc, Pt, dOs, BQ);
    attn_mm<TR, TO, SP, 1, SD>(dk_acc, dSt, Qs, BQ);
    __syncthreads();
  }
  attn_store(dk_acc, scale, dk, b, h, k0, Tk, H, D);
  attn_store(dv_acc, 1.f, dv, b, h, k0, Tk, H, D);
}

template <int DMAX, int BQ, int BKV>
static __device__ __forceinline__ void attn_backward_dq(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ mask, const float* __restrict__ dout,
    const float* __restrict__ lse, const float* __restrict__ delta, float* __restrict__ dq,
    int H, int Tq, int Tk, int D, int has_mask, float scale, AttnDropout dr) {
  using namespace attention_tile;
  constexpr int SD = DMAX + 1;
  constexpr int SP = BKV + PAD_P;  // row stride of the dS tile [BQ][BKV]
  constexpr int TR = BQ / RG;      // query rows per thread
  constexpr int TS = BKV / CG;     // key columns per thread
  constexpr int TO = DMAX / CG;    // head-dim columns per thread
  __shared__ float Qs[BQ * SD];
  __shared__ float dOs[BQ * SD];
  __shared__ float Ks[BKV * SD];
  __shared__ float Vs[BKV * SD];
  __shared__ float dSs[BQ * SP];

  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
  const int ty = threadIdx.x / CG, tx = threadIdx.x % CG;
  attn_load<BQ, DMAX, SD>(Qs, q, b, h, q0, Tq, H, D);
  attn_load<BQ, DMAX, SD>(dOs, dout, b, h, q0, Tq, H, D);
  const size_t stat = ((size_t)b * H + h) * Tq;
  float row_lse[TR], row_delta[TR];
#pragma unroll
  for (int i = 0; i < TR; ++i) {
    const int row = q0 + ty + i * RG;
    row_lse[i] = row < Tq ? lse[stat + row] : -INFINITY;
    row_delta[i] = row < Tq ? delta[stat + row] : 0.f;
  }

  float dq_acc[TR][TO];
  attn_zero(dq_acc);
  for (int k0 = 0; k0 < Tk; k0 += BKV) {
    attn_load<BKV, DMAX, SD>(Ks, k, b, h, k0, Tk, H, D);
    attn_load<BKV, DMAX, SD>(Vs, v, b, h, k0, Tk, H, D);
    __syncthreads();
    float s[TR][TS], dp[TR][TS];
    attn_zero(s);
    attn_zero(dp);
    attn_mm<TR, TS, SD, SD, 1>(s, Qs, Ks, D);
    attn_mm<TR, TS, SD, SD, 1>(dp, dOs, Vs, D);
#pragma unroll
    for (int j = 0; j < TS; ++j) {
      const int c = tx + j * CG;
      const float bias = attn_key_bias(mask, has_mask, b, k0 + c, Tk);
#pragma unroll
      for (int i = 0; i < TR; ++i) {
        const float kd = attn_drop(dr, b, h, H, q0 + ty + i * RG, Tq, k0 + c, Tk);
        float p;
        dSs[(ty + i * RG) * SP + c] =
            attn_ds(s[i][j], dp[i][j] * kd, scale, bias, row_lse[i], row_delta[i], &p);
      }
    }
    __syncthreads();
    attn_mm<TR, TO, SP, 1, SD>(dq_acc, dSs, Ks, BKV);
    __syncthreads();
  }
  attn_store(dq_acc, scale, dq, b, h, q0, Tq, H, D);
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
attention_backward_dkdv_d64_f32(const float* __restrict__ q, const float* __restrict__ k,
                                const float* __restrict__ v, const float* __restrict__ mask,
                                const float* __restrict__ dout, const float* __restrict__ lse,
                                const float* __restrict__ delta, float* __restrict__ dk,
                                float* __restrict__ dv, int H, int Tq, int Tk, int D,
                                int has_mask, float scale,
    unsigned long long drop_seed, unsigned drop_threshold, float drop_scale) {
  using namespace attention_tile;
  attn_backward_dkdv<64, BWD64_BQ, BWD64_BKV>(q, k, v, mask, dout, lse, delta, dk, dv, H, Tq,
                                              Tk, D, has_mask, scale,
      AttnDropout{drop_seed, drop_threshold, drop_scale});
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
attention_backward_dkdv_d128_f32(const float* __restrict__ q, const float* __restrict__ k,
                                 const float* __restrict__ v, const float* __restrict__ mask,
                                 const float* __restrict__ dout, const float* __restrict__ lse,
                                 const float* __restrict__ delta, float* __restrict__ dk,
                                 float* __restrict__ dv, int H, int Tq, int Tk, int D,
                                 int has_mask, float scale,
    unsigned long long drop_seed, unsigned drop_threshold, float drop_scale) {
  using namespace attention_tile;
  attn_backward_dkdv<128, BWD128_BQ, BWD128_BKV>(q, k, v, mask, dout, lse, delta, dk, dv, H, Tq,
                                                 Tk, D, has_mask, scale,
      AttnDropout{drop_seed, drop_threshold, drop_scale});
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
attention_backward_dq_d64_f32(const float* __restrict__ q, const float* __restrict__ k,
                              const float* __restrict__ v, const float* __restrict__ mask,
                              const float* __restrict__ dout, const float* __restrict__ lse,
                              const float* __restrict__ delta, float* __restrict__ dq, int H,
                              int Tq, int Tk, int D, int has_mask, float scale,
    unsigned long long drop_seed, unsigned drop_threshold, float drop_scale) {
  using namespace attention_tile;
  attn_backward_dq<64, BWD64_BQ, BWD64_BKV>(q, k, v, mask, dout, lse, delta, dq, H, Tq, Tk, D,
                                            has_mask, scale,
      AttnDropout{drop_seed, drop_threshold, drop_scale});
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
attention_backward_dq_d128_f32(const float* __restrict__ q, const float* __restrict__ k,
                               const float* __restrict__ v, const float* __restrict__ mask,
                               const float* __restrict__ dout, const float* __restrict__ lse,
                               const float* __restrict__ delta, float* __restrict__ dq, int H,
                               int Tq, int Tk, int D, int has_mask, float scale,
    unsigned long long drop_seed, unsigned drop_threshold, float drop_scale) {
  using namespace attention_tile;
  attn_backward_dq<128, BWD128_BQ, BWD128_BKV>(q, k, v, mask, dout, lse, delta, dq, H, Tq, Tk,
                                               D, has_mask, scale,
      AttnDropout{drop_seed, drop_threshold, drop_scale});
}

// ---------------------------------------------------------------------------------------
// Forward on tensor cores: bf16 or f16 q, k, v; f32 scores, softmax statistics and
// accumulation; f32 out [B, Tq, H·D] and lse [B, H, Tq] (the same contract as the f32
// forward, so the f32 backward can consume its lse).
//
// Work split (attention_forward_tc_{d64,d128}_{bf16,f16})
//   grid (ceil(Tq / (16·WARPS)), H, B); block WARPS warps (d64: 4, d128: 2); a warp owns
//   16 query rows, whose Q fragments it keeps in registers (DMAX/16 WMMA matrix_a).
//   Keys are walked in tiles of TC_BKV = 32: the block stages K, V (16-bit, rows padded by
//   8 elements) and the tile's mask in shared memory; each warp computes its 16×32 scores
//   S = Q·Kᵀ with WMMA (K read as a col_major matrix_b) into a per-warp f32 square, two
//   lanes per row run the online softmax on it (running max and sum in registers, P
//   written as 16-bit to a per-warp tile, the row of the per-warp f32 output tile
//   rescaled), then O += P·V with WMMA (O loaded from and stored back to its tile).
//   The output tile lives in shared memory because WMMA accumulator elements cannot be
//   addressed (their layout is opaque), and rows need the online-softmax rescale.
// ---------------------------------------------------------------------------------------
#include <mma.h>

namespace attention_tc_tile {
constexpr int BKV = 32;     // keys per tile
constexpr int FRAG = 16;    // WMMA m = n = k
constexpr int SKEW = 8;     // padding of 16-bit tile rows, in elements
constexpr int SKEW_F = 4;   // padding of f32 tile rows, in elements
constexpr int WARPS_D64 = 4;   // warps per block for DMAX = 64
constexpr int WARPS_D128 = 2;  // warps per block for DMAX = 128

// Shared-memory layout of one configuration (byte offsets, 128-byte aligned).
template <int DMAX, int WARPS>
struct Layout {
  static constexpr int BQ = FRAG * WARPS;
  static constexpr int LDK = DMAX + SKEW;      // K, V and Q staging rows (16-bit)
  static constexpr int LDS = BKV + SKEW_F;     // per-warp score tile rows (f32)
  static constexpr int LDP = BKV + SKEW;       // per-warp P tile rows (16-bit)
  static constexpr int LDO = DMAX + SKEW_F;    // per-warp output tile rows (f32)
  static constexpr int up(int x) { return (x + 127) / 128 * 128; }
  static constexpr int K_OFF = 0;
  static constexpr int V_OFF = up(K_OFF + BKV * LDK * 2);
  static constexpr int BIAS_OFF = up(V_OFF + BKV * LDK * 2);
  static constexpr int S_OFF = up(BIAS_OFF + BKV * 4);
  static constexpr int P_OFF = up(S_OFF + WARPS * FRAG * LDS * 4);
  static constexpr int O_OFF = up(P_OFF + WARPS * FRAG * LDP * 2);
  static constexpr int END = up(O_OFF + WARPS * FRAG * LDO * 4);
  // The Q tile is staged in the output area before the output is zeroed.
  static_assert(BQ * LDK * 2 <= WARPS * FRAG * LDO * 4, "Q staging fits the output area");
  static_assert(END <= 48 * 1024, "static shared memory limit");
};
}  // namespace attention_tc_tile

// Stages rows row0.. (ROWS of them) of head h of a [B, T, H·D] 16-bit activation into
// tile[r][c] (row stride LD), c < DMAX, zero outside; 16-byte loads when `vec`.
template <int ROWS, int DMAX, int LD, int NT>
static __device__ __forceinline__ void attn_tc_load(unsigned short* tile,
                                                    const unsigned short* __restrict__ src,
                                                    int b, int h, int row0, int T, int H, int D,
                                                    bool vec) {
  constexpr int VPR = DMAX / 8;  // 8-element vectors per row
  for (int idx = threadIdx.x; idx < ROWS * VPR; idx += NT) {
    const int r = idx / VPR, c = (idx % VPR) * 8, row = row0 + r;
    *reinterpret_cast<uint4*>(tile + r * LD + c) =
        row < T ? svlp_load8_u16(src + attn_row(b, row, T, h, H, D) + c, D - c, vec)
                : make_uint4(0u, 0u, 0u, 0u);
  }
}

template <typename T, int DMAX, int WARPS>
static __device__ __forceinline__ void attn_forward_tc(const T* __restrict__ q_,
                                                       const T* __restrict__ k_,
                                                       const T* __restrict__ v_,
                                                       const float* __restrict__ mask,
                                                       float* __restrict__ out,
                                                       float* __restrict__ lse, int H, int Tq,
                                                       int Tk, int D, int has_mask,
                                                       float scale) {
  using namespace attention_tc_tile;
  using namespace nvcuda;
  using L = Layout<DMAX, WARPS>;
  constexpr int NT = WARPS * 32;
  constexpr int DF = DMAX / FRAG;   // head-dim fragments
  constexpr int KF = BKV / FRAG;    // key fragments per tile
  constexpr int HALF = DMAX / 2;    // output columns per lane (two lanes per row)
  __shared__ __align__(128) unsigned char smem[L::END];
  unsigned short* Ks = reinterpret_cast<unsigned short*>(smem + L::K_OFF);
  unsigned short* Vs = reinterpret_cast<unsigned short*>(smem + L::V_OFF);
  float* bias_s = reinterpret_cast<float*>(smem + L::BIAS_OFF);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* Sw = reinterpret_cast<float*>(smem + L::S_OFF) + warp * FRAG * L::LDS;
  unsigned short* Pw = reinterpret_cast<unsigned short*>(smem + L::P_OFF) + warp * FRAG * L::LDP;
  float* Ow = reinterpret_cast<float*>(smem + L::O_OFF) + warp * FRAG * L::LDO;

  const unsigned short* q = reinterpret_cast<const unsigned short*>(q_);
  const unsigned short* k = reinterpret_cast<const unsigned short*>(k_);
  const unsigned short* v = reinterpret_cast<const unsigned short*>(v_);
  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * L::BQ;
  const bool vec = D % 8 == 0 && (H * D) % 8 == 0 && svlp_aligned16(q) && svlp_aligned16(k) &&
                   svlp_aligned16(v);

  // Q fragments of this warp's 16 rows, staged through the output area.
  unsigned short* Qs = reinterpret_cast<unsigned short*>(smem + L::O_OFF);
  attn_tc_load<L::BQ, DMAX, L::LDK, NT>(Qs, q, b, h, q0, Tq, H, D, vec);
  __syncthreads();
  wmma::fragment<wmma::matrix_a, FRAG, FRAG, FRAG, T, wmma::row_major> qf[DF];
#pragma unroll
  for (int f = 0; f < DF; ++f) {
    wmma::load_matrix_sync(qf[f], reinterpret_cast<const T*>(Qs) + warp * FRAG * L::LDK + f * FRAG,
                           L::LDK);
  }
  __syncthreads();
  // Lanes 2r and 2r + 1 own row r of the warp's tiles (columns split in halves).
  const int r = lane / 2, half = lane % 2;
  for (int c = 0; c < HALF; ++c) Ow[r * L::LDO + half * HALF + c] = 0.f;
  float m = -INFINITY, l = 0.f;

  for (int k0 = 0; k0 < Tk; k0 += BKV) {
    attn_tc_load<BKV, DMAX, L::LDK, NT>(Ks, k, b, h, k0, Tk, H, D, vec);
    attn_tc_load<BKV, DMAX, L::LDK, NT>(Vs, v, b, h, k0, Tk, H, D, vec);
    for (int j = threadIdx.x; j < BKV; j += NT) {
      bias_s[j] = attn_key_bias(mask, has_mask, b, k0 + j, Tk);
    }
    __syncthreads();

    // S = Q·Kᵀ for this warp's 16 rows.
#pragma unroll
    for (int j = 0; j < KF; ++j) {
      wmma::fragment<wmma::accumulator, FRAG, FRAG, FRAG, float> sf;
      wmma::fill_fragment(sf, 0.f);
#pragma unroll
      for (int f = 0; f < DF; ++f) {
        wmma::fragment<wmma::matrix_b, FRAG, FRAG, FRAG, T, wmma::col_major> kf;
        wmma::load_matrix_sync(kf, reinterpret_cast<const T*>(Ks) + j * FRAG * L::LDK + f * FRAG,
                               L::LDK);
        wmma::mma_sync(sf, qf[f], kf, sf);
      }
      wmma::store_matrix_sync(Sw + j * FRAG, sf, L::LDS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax of row r over this tile (each lane takes half of the columns).
    constexpr int SC = BKV / 2;
    float mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < SC; ++c) {
      const int col = half * SC + c;
      const float s = Sw[r * L::LDS + col] * scale + bias_s[col];
      Sw[r * L::LDS + col] = s;
      mx = fmaxf(mx, s);
    }
    mx = svlp_group_max<2>(mx);
    const float m_new = fmaxf(m, mx);
    const float alpha = m_new == -INFINITY ? 1.f : expf(m - m_new);
    float sum = 0.f;
#pragma unroll
    for (int c = 0; c < SC; ++c) {
      const int col = half * SC + c;
      const float p = m_new == -INFINITY ? 0.f : expf(Sw[r * L::LDS + col] - m_new);
      // Sum what P·V will see: the probability rounded to the 16-bit type.
      const T pt = svlp_from_float<T>(p);
      sum += svlp_to_float(pt);
      reinterpret_cast<T*>(Pw)[r * L::LDP + col] = pt;
    }
    sum = svlp_group_sum<2>(sum);
    l = l * alpha + sum;
    m = m_new;
    for (int c = 0; c < HALF; ++c) Ow[r * L::LDO + half * HALF + c] *= alpha;
    __syncwarp();

    // O += P·V.
    wmma::fragment<wmma::matrix_a, FRAG, FRAG, FRAG, T, wmma::row_major> pf[KF];
#pragma unroll
    for (int j = 0; j < KF; ++j) {
      wmma::load_matrix_sync(pf[j], reinterpret_cast<const T*>(Pw) + j * FRAG, L::LDP);
    }
#pragma unroll
    for (int f = 0; f < DF; ++f) {
      wmma::fragment<wmma::accumulator, FRAG, FRAG, FRAG, float> of;
      wmma::load_matrix_sync(of, Ow + f * FRAG, L::LDO, wmma::mem_row_major);
#pragma unroll
      for (int j = 0; j < KF; ++j) {
        wmma::fragment<wmma::matrix_b, FRAG, FRAG, FRAG, T, wmma::row_major> vf;
        wmma::load_matrix_sync(vf, reinterpret_cast<const T*>(Vs) + j * FRAG * L::LDK + f * FRAG,
                               L::LDK);
        wmma::mma_sync(of, pf[j], vf, of);
      }
      wmma::store_matrix_sync(Ow + f * FRAG, of, L::LDO, wmma::mem_row_major);
    }
    __syncthreads();
  }

  const int row = q0 + warp * FRAG + r;
  if (row < Tq) {
    const float inv = l > 0.f ? 1.f / l : 0.f;
    float* dst = out + attn_row(b, row, Tq, h, H, D);
    for (int c = half * HALF; c < (half + 1) * HALF && c < D; ++c) dst[c] = Ow[r * L::LDO + c] * inv;
    if (half == 0) lse[((size_t)b * H + h) * Tq + row] = l > 0.f ? m + logf(l) : -INFINITY;
  }
}

extern "C" __global__ void __launch_bounds__(attention_tc_tile::WARPS_D64 * 32)
attention_forward_tc_d64_bf16(const __nv_bfloat16* __restrict__ q,
                              const __nv_bfloat16* __restrict__ k,
                              const __nv_bfloat16* __restrict__ v, const float* __restrict__ mask,
                              float* __restrict__ out, float* __restrict__ lse, int H, int Tq,
                              int Tk, int D, int has_mask, float scale) {
  attn_forward_tc<__nv_bfloat16, 64, attention_tc_tile::WARPS_D64>(q, k, v, mask, out, lse, H, Tq,
                                                                   Tk, D, has_mask, scale);
}

extern "C" __global__ void __launch_bounds__(attention_tc_tile::WARPS_D128 * 32)
attention_forward_tc_d128_bf16(const __nv_bfloat16* __restrict__ q,
                               const __nv_bfloat16* __restrict__ k,
                               const __nv_bfloat16* __restrict__ v,
                               const float* __restrict__ mask, float* __restrict__ out,
                               float* __restrict__ lse, int H, int Tq, int Tk, int D,
                               int has_mask, float scale) {
  attn_forward_tc<__nv_bfloat16, 128, attention_tc_tile::WARPS_D128>(q, k, v, mask, out, lse, H,
                                                                     Tq, Tk, D, has_mask, scale);
}

extern "C" __global__ void __launch_bounds__(attention_tc_tile::WARPS_D64 * 32)
attention_forward_tc_d64_f16(const __half* __restrict__ q, const __half* __restrict__ k,
                             const __half* __restrict__ v, const float* __restrict__ mask,
                             float* __restrict__ out, float* __restrict__ lse, int H, int Tq,
                             int Tk, int D, int has_mask, float scale) {
  attn_forward_tc<__half, 64, attention_tc_tile::WARPS_D64>(q, k, v, mask, out, lse, H, Tq, Tk, D,
                                                            has_mask, scale);
}

extern "C" __global__ void __launch_bounds__(attention_tc_tile::WARPS_D128 * 32)
attention_forward_tc_d128_f16(const __half* __restrict__ q, const __half* __restrict__ k,
                              const __half* __restrict__ v, const float* __restrict__ mask,
                              float* __restrict__ out, float* __restrict__ lse, int H, int Tq,
                              int Tk, int D, int has_mask, float scale) {
  attn_forward_tc<__half, 128, attention_tc_tile::WARPS_D128>(q, k, v, mask, out, lse, H, Tq, Tk,
                                                              D, has_mask, scale);
}
