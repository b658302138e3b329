// Block-sparse flash attention, f32, forward and backward, as
// src/ops/block_sparse_attention (the CPU op): out = softmax(Q·Kᵀ·scale + mask)·V per
// (batch, head) over the (query block, key block) pairs a BlockLayout makes active, with
// q [B, Tq, H·D], k and v [B, Tk, H·D], an optional additive key-padding mask [B, Tk],
// out [B, Tq, H·D] and the log-sum-exp of every query row lse [B, H, Tq]. Inactive blocks
// are never touched: every kernel walks only the active blocks of its row or column.
//
// Layout arrays (int32, uploaded once per layout by src/gpu/sparse/attention_layout.rs;
// `block` tokens per layout block, a multiple of TILE):
//   row_start [q_blocks + 1], key_blocks [active]: the active key blocks of each query
//     block (CSR, entries numbered row by row);
//   col_start [k_blocks + 1], col_qblocks [active], col_entries [active]: the same pairs
//     by key block (the transposed layout: the query block and the entry number of each);
//   mask_of [active]: the element-mask number of each entry, −1 when the whole block is
//     allowed; masks: per element mask `block` rows of block/32 words, bit c % 32 of word
//     c / 32 of row r set when local query r may attend local key c.
// Conventions of the CPU op: element-masked pairs get probability 0; a query row with no
// allowed key gets output 0, lse = +∞ (so every recomputed probability is 0) and zero
// gradients. Head dims up to DMAX = 64 (columns past D are zero-padded).
//
// Work split (THREADS = 128 threads, the 16 × 8 grid of attention_tile.cuh; tiles of TILE
// = 32 rows, so a layout block of `block` tokens is block/32 tiles on either side):
//   block_sparse_attention_forward_f32
//     grid (ceil(Tq / TILE), H, B); a block owns TILE query rows of one (batch, head),
//     all inside query block qb, and walks the active key blocks of qb in key tiles of
//     TILE: S = Q·Kᵀ (thread: 2 × 4 scores in registers) → scale, key mask, element mask
//     → online softmax (running max and sum per row in the registers of the row's 8
//     threads) → P to shared memory → O += P·V (thread: 2 × 8 outputs in registers).
//   block_sparse_attention_backward_dq_f32
//     grid (ceil(Tq / TILE), H, B); a block owns TILE queries and walks the same key tiles:
//     S and dP = dO·Vᵀ, P = e^(logit − lse), dS = P·(dP − Δ) to shared memory, dQ += dS·K.
//     Δ = Σ_d dO·O per row comes from attention_backward_dot_f32 (attention.cu).
//   block_sparse_attention_backward_dkdv_f32
//     grid (ceil(Tk / TILE), H, B); a block owns TILE keys of key block kb and walks the
//     query blocks that have kb active (the transposed layout), in query tiles of TILE:
//     Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, Pᵀ and dSᵀ to shared memory, dV += Pᵀ·dO, dK += dSᵀ·Q.
//   Each output element is owned by one block and accumulated in registers, so there are
//   no atomics and every result is deterministic (the price: S and dP are computed by both
//   backward kernels).
#include "attention_tile.cuh"

namespace block_sparse_tile {
constexpr int TILE = 32;                      // query rows and keys per tile
constexpr int DMAX = 64;                      // largest head dim
constexpr int SD = DMAX + 1;                  // row stride of [TILE][DMAX] tiles
constexpr int SP = TILE + attention_tile::PAD_P;  // row stride of score tiles
constexpr int TR = TILE / attention_tile::RG;     // tile rows per thread
constexpr int TS = TILE / attention_tile::CG;     // score columns per thread
constexpr int TO = DMAX / attention_tile::CG;     // head-dim columns per thread
constexpr int WORD = 32;                      // mask bits per word
}  // namespace block_sparse_tile

// The element mask of layout entry `entry` (nullptr when the whole block is allowed).
static __device__ __forceinline__ const unsigned* bsa_entry_mask(const int* __restrict__ mask_of,
                                                                 const unsigned* __restrict__ masks,
                                                                 int entry, int block) {
  const int m = mask_of[entry];
  return m < 0 ? nullptr : masks + (size_t)m * block * (block / block_sparse_tile::WORD);
}

// Whether local query `r` may attend local key `c` under element mask `em`.
static __device__ __forceinline__ bool bsa_allowed(const unsigned* em, int block, int r, int c) {
  using namespace block_sparse_tile;
  if (em == nullptr) return true;
  return (em[r * (block / WORD) + c / WORD] >> (c % WORD)) & 1u;
}

// The logit of raw product `s` of query `row` and key `key` (both global, inside the block
// pair starting at query q_base and key k_base): s·scale + bias, −∞ where `em` forbids it.
static __device__ __forceinline__ float bsa_logit(float s, float scale, float bias,
                                                  const unsigned* em, int block, int row,
                                                  int q_base, int key, int k_base) {
  return bsa_allowed(em, block, row - q_base, key - k_base) ? s * scale + bias : -INFINITY;
}

// P = e^(logit − lse), 0 for a forbidden pair or a row without keys (lse = +∞).
static __device__ __forceinline__ float bsa_prob(float logit, float row_lse) {
  return logit == -INFINITY ? 0.f : expf(logit - row_lse);
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
block_sparse_attention_forward_f32(const float* __restrict__ q, const float* __restrict__ k,
                                   const float* __restrict__ v, const float* __restrict__ mask,
                                   float* __restrict__ out, float* __restrict__ lse,
                                   const int* __restrict__ row_start,
                                   const int* __restrict__ key_blocks,
                                   const int* __restrict__ mask_of,
                                   const unsigned* __restrict__ masks, int H, int Tq, int Tk,
                                   int D, int has_mask, float scale, int block) {
  using namespace attention_tile;
  using namespace block_sparse_tile;
  __shared__ float Qs[TILE * SD];
  __shared__ float Ks[TILE * SD];
  __shared__ float Vs[TILE * SD];
  __shared__ float Ps[TILE * SP];

  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * TILE;
  const int qb = q0 / block, q_base = qb * block;
  const int ty = threadIdx.x / CG, tx = threadIdx.x % CG;
  attn_load<TILE, DMAX, SD>(Qs, q, b, h, q0, Tq, H, D);

  float o[TR][TO];
  attn_zero(o);
  float m[TR], l[TR];
#pragma unroll
  for (int i = 0; i < TR; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.f;
  }

  for (int e = row_start[qb]; e < row_start[qb + 1]; ++e) {
    const int k_base = key_blocks[e] * block;
    const unsigned* em = bsa_entry_mask(mask_of, masks, e, block);
    const int k_end = min(k_base + block, Tk);
    for (int k0 = k_base; k0 < k_end; k0 += TILE) {
      attn_load<TILE, DMAX, SD>(Ks, k, b, h, k0, Tk, H, D);
      attn_load<TILE, DMAX, SD>(Vs, v, b, h, k0, Tk, H, D);
      __syncthreads();

      float s[TR][TS];
      attn_zero(s);
      attn_mm<TR, TS, SD, SD, 1>(s, Qs, Ks, D);
      float bias[TS];
#pragma unroll
      for (int j = 0; j < TS; ++j) bias[j] = attn_key_bias(mask, has_mask, b, k0 + tx + j * CG, Tk);

#pragma unroll
      for (int i = 0; i < TR; ++i) {
        const int row = q0 + ty + i * RG;
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < TS; ++j) {
          const int key = k0 + tx + j * CG;
          s[i][j] = bsa_logit(s[i][j], scale, bias[j], em, block, row, q_base, key, k_base);
          mx = fmaxf(mx, s[i][j]);
        }
        mx = svlp_group_max<CG>(mx);
        const float m_new = fmaxf(m[i], mx);
        // Until an allowed key is seen the row has no mass: keep it at zero.
        const float alpha = m_new == -INFINITY ? 1.f : expf(m[i] - m_new);
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < TS; ++j) {
          const float p = m_new == -INFINITY ? 0.f : bsa_prob(s[i][j], m_new);
          s[i][j] = p;
          sum += p;
        }
        sum = svlp_group_sum<CG>(sum);
        l[i] = l[i] * alpha + sum;
        m[i] = m_new;
#pragma unroll
        for (int j = 0; j < TO; ++j) o[i][j] *= alpha;
#pragma unroll
        for (int j = 0; j < TS; ++j) Ps[(ty + i * RG) * SP + tx + j * CG] = s[i][j];
      }
      __syncthreads();
      attn_mm<TR, TO, SP, 1, SD>(o, Ps, Vs, TILE);
      __syncthreads();
    }
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
    if (tx == 0) lse[((size_t)b * H + h) * Tq + row] = l[i] > 0.f ? m[i] + logf(l[i]) : INFINITY;
  }
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
block_sparse_attention_backward_dq_f32(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ mask, const float* __restrict__ dout,
    const float* __restrict__ lse, const float* __restrict__ delta, float* __restrict__ dq,
    const int* __restrict__ row_start, const int* __restrict__ key_blocks,
    const int* __restrict__ mask_of, const unsigned* __restrict__ masks, int H, int Tq,
    int Tk, int D, int has_mask, float scale, int block) {
  using namespace attention_tile;
  using namespace block_sparse_tile;
  __shared__ float Qs[TILE * SD];
  __shared__ float dOs[TILE * SD];
  __shared__ float Ks[TILE * SD];
  __shared__ float Vs[TILE * SD];
  __shared__ float dSs[TILE * SP];

  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * TILE;
  const int qb = q0 / block, q_base = qb * block;
  const int ty = threadIdx.x / CG, tx = threadIdx.x % CG;
  attn_load<TILE, DMAX, SD>(Qs, q, b, h, q0, Tq, H, D);
  attn_load<TILE, DMAX, SD>(dOs, dout, b, h, q0, Tq, H, D);
  const size_t stat = ((size_t)b * H + h) * Tq;
  float row_lse[TR], row_delta[TR];
#pragma unroll
  for (int i = 0; i < TR; ++i) {
    const int row = q0 + ty + i * RG;
    row_lse[i] = row < Tq ? lse[stat + row] : INFINITY;
    row_delta[i] = row < Tq ? delta[stat + row] : 0.f;
  }

  float dq_acc[TR][TO];
  attn_zero(dq_acc);
  for (int e = row_start[qb]; e < row_start[qb + 1]; ++e) {
    const int k_base = key_blocks[e] * block;
    const unsigned* em = bsa_entry_mask(mask_of, masks, e, block);
    const int k_end = min(k_base + block, Tk);
    for (int k0 = k_base; k0 < k_end; k0 += TILE) {
      attn_load<TILE, DMAX, SD>(Ks, k, b, h, k0, Tk, H, D);
      attn_load<TILE, DMAX, SD>(Vs, v, b, h, k0, Tk, H, D);
      __syncthreads();
      float s[TR][TS], dp[TR][TS];
      attn_zero(s);
      attn_zero(dp);
      attn_mm<TR, TS, SD, SD, 1>(s, Qs, Ks, D);
      attn_mm<TR, TS, SD, SD, 1>(dp, dOs, Vs, D);
#pragma unroll
      for (int j = 0; j < TS; ++j) {
        const int key = k0 + tx + j * CG;
        const float bias = attn_key_bias(mask, has_mask, b, key, Tk);
#pragma unroll
        for (int i = 0; i < TR; ++i) {
          const int row = q0 + ty + i * RG;
          const float logit =
              bsa_logit(s[i][j], scale, bias, em, block, row, q_base, key, k_base);
          dSs[(ty + i * RG) * SP + tx + j * CG] =
              bsa_prob(logit, row_lse[i]) * (dp[i][j] - row_delta[i]);
        }
      }
      __syncthreads();
      attn_mm<TR, TO, SP, 1, SD>(dq_acc, dSs, Ks, TILE);
      __syncthreads();
    }
  }
  attn_store(dq_acc, scale, dq, b, h, q0, Tq, H, D);
}

extern "C" __global__ void __launch_bounds__(attention_tile::THREADS)
block_sparse_attention_backward_dkdv_f32(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const float* __restrict__ mask, const float* __restrict__ dout,
    const float* __restrict__ lse, const float* __restrict__ delta, float* __restrict__ dk,
    float* __restrict__ dv, const int* __restrict__ col_start,
    const int* __restrict__ col_qblocks, const int* __restrict__ col_entries,
    const int* __restrict__ mask_of, const unsigned* __restrict__ masks, int H, int Tq,
    int Tk, int D, int has_mask, float scale, int block) {
  using namespace attention_tile;
  using namespace block_sparse_tile;
  __shared__ float Ks[TILE * SD];
  __shared__ float Vs[TILE * SD];
  __shared__ float Qs[TILE * SD];
  __shared__ float dOs[TILE * SD];
  __shared__ float Pt[TILE * SP];
  __shared__ float dSt[TILE * SP];
  __shared__ float lse_s[TILE];
  __shared__ float delta_s[TILE];

  const int b = blockIdx.z, h = blockIdx.y, k0 = blockIdx.x * TILE;
  const int kb = k0 / block, k_base = kb * block;
  const int ty = threadIdx.x / CG, tx = threadIdx.x % CG;
  attn_load<TILE, DMAX, SD>(Ks, k, b, h, k0, Tk, H, D);
  attn_load<TILE, DMAX, SD>(Vs, v, b, h, k0, Tk, H, D);
  float bias[TR];
#pragma unroll
  for (int i = 0; i < TR; ++i) bias[i] = attn_key_bias(mask, has_mask, b, k0 + ty + i * RG, Tk);

  float dk_acc[TR][TO], dv_acc[TR][TO];
  attn_zero(dk_acc);
  attn_zero(dv_acc);
  const size_t stat = ((size_t)b * H + h) * Tq;

  for (int c = col_start[kb]; c < col_start[kb + 1]; ++c) {
    const int q_base = col_qblocks[c] * block;
    const unsigned* em = bsa_entry_mask(mask_of, masks, col_entries[c], block);
    const int q_end = min(q_base + block, Tq);
    for (int q0 = q_base; q0 < q_end; q0 += TILE) {
      attn_load<TILE, DMAX, SD>(Qs, q, b, h, q0, Tq, H, D);
      attn_load<TILE, DMAX, SD>(dOs, dout, b, h, q0, Tq, H, D);
      for (int r = threadIdx.x; r < TILE; r += THREADS) {
        const bool in = q0 + r < Tq;
        lse_s[r] = in ? lse[stat + q0 + r] : INFINITY;
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
        const int key = k0 + ty + i * RG;
#pragma unroll
        for (int j = 0; j < TS; ++j) {
          const int col = tx + j * CG, row = q0 + col;
          const float logit =
              bsa_logit(s[i][j], scale, bias[i], em, block, row, q_base, key, k_base);
          const float p = bsa_prob(logit, lse_s[col]);
          Pt[(ty + i * RG) * SP + col] = p;
          dSt[(ty + i * RG) * SP + col] = p * (dp[i][j] - delta_s[col]);
        }
      }
      __syncthreads();
      attn_mm<TR, TO, SP, 1, SD>(dv_acc, Pt, dOs, TILE);
      attn_mm<TR, TO, SP, 1, SD>(dk_acc, dSt, Qs, TILE);
      __syncthreads();
    }
  }
  attn_store(dk_acc, scale, dk, b, h, k0, Tk, H, D);
  attn_store(dv_acc, 1.f, dv, b, h, k0, Tk, H, D);
}
