// Block-sparse (BSR) linear layer on tensor cores: bf16 operands, f32 accumulation, f32
// outputs. W is [rows, cols] stored as B×B blocks (B = 16 or 32, zero-padded at ragged
// edges, values row-major inside a block, bf16); X is [tokens, cols], dY [tokens, rows],
// both bf16 row-major with a leading dimension. Only stored blocks are touched.
//
//   bsr_bf16_forward_b{16,32}   Y = X·Wᵀ       (Y [tokens, rows])
//   bsr_bf16_dgrad_b{16,32}     dX = dY·W      (dX [tokens, cols])
//   bsr_bf16_wgrad_b{16,32}     dW_blk = dY[:, rows of blk]ᵀ · X[:, cols of blk] for every
//                               stored block (SDDMM at block granularity), B·B f32 per
//                               block in storage order, padding included (it comes out 0).
//
// The forward and dX kernels are one body: an output strip of B columns is the sum over a
// list of (activation column block, weight block) pairs. For the forward the list is the
// block row of W (block_row_ptr / block_col_idx, block ids in storage order); for dX it is
// a block column of W, walked through the transposed block index built at upload
// (block_col_ptr / block_row_idx / block id), and the weight block enters untransposed.
//
// Work split
//   product kernels (forward, dgrad)
//     grid   (ceil(tokens / TOK), lines): blockIdx.y is the block row (forward) or block
//            column (dgrad) of W, i.e. B output columns; blockIdx.x a strip of TOK tokens.
//     block  THREADS = 128 (4 warps) own the TOK×B output tile. Per listed weight block the
//            activation tile [TOK][B] and the weight block [B][B] are staged in shared
//            memory (rows padded by SKEW), loaded into registers one block ahead (16-byte
//            loads when aligned, bounds-checked 2-byte loads at ragged edges).
//     warp   16 tokens × B columns: B/16 WMMA 16×16×16 accumulators, B/16 k-steps per block.
//     Epilogue through a per-warp 16×16 f32 staging square, bounds-checked stores; an empty
//     line writes zeros.
//   wgrad
//     grid   (stored blocks); a block owns one B×B gradient block and walks the tokens in
//            chunks of TOK, staging dY[chunk, rows of blk] and X[chunk, cols of blk].
//     warp   B = 32: one of the four 16×16 fragments over every token of a chunk;
//            B = 16: the single fragment over a quarter (16 tokens) of each chunk, the four
//            partial sums added in warp order at the end (deterministic).
#include <mma.h>

#include "common.cuh"

namespace bsr_tc_tile {
constexpr int TOK = 64;       // tokens per block (product kernels) / per chunk (wgrad)
constexpr int THREADS = 128;  // 4 warps
constexpr int WARPS = THREADS / 32;
constexpr int FRAG = 16;      // WMMA m = n = k
constexpr int SKEW = 8;       // padding of every shared row, in elements
constexpr int VEC = 8;        // 16-bit elements per 16-byte vector
static_assert(TOK == WARPS * FRAG, "a warp owns 16 tokens of the strip");
}  // namespace bsr_tc_tile

// Registers holding one thread's share of a ROWS×COLS 16-bit tile between load and store.
template <int ROWS, int COLS>
struct BsrTcRegs {
  static constexpr int VPR = COLS / bsr_tc_tile::VEC;  // vectors per row
  static constexpr int N = (ROWS * VPR + bsr_tc_tile::THREADS - 1) / bsr_tc_tile::THREADS;
  uint4 v[N];
};

// Loads rows r0.. and columns c0.. (a ROWS×COLS tile) of a row-major 16-bit matrix with
// `rows` rows, `cols` columns and leading dimension ld; zero outside the matrix.
template <int ROWS, int COLS>
static __device__ __forceinline__ BsrTcRegs<ROWS, COLS> bsr_tc_load(const unsigned short* p,
                                                                    int ld, int r0, int c0,
                                                                    int rows, int cols,
                                                                    bool vec) {
  using namespace bsr_tc_tile;
  using Regs = BsrTcRegs<ROWS, COLS>;
  Regs out;
#pragma unroll
  for (int i = 0; i < Regs::N; ++i) {
    const int idx = threadIdx.x + i * THREADS;
    const int r = r0 + idx / Regs::VPR, c = c0 + (idx % Regs::VPR) * VEC;
    out.v[i] = idx < ROWS * Regs::VPR && r < rows
                   ? svlp_load8_u16(p + (size_t)r * ld + c, cols - c, vec)
                   : make_uint4(0u, 0u, 0u, 0u);
  }
  return out;
}

// Stores the registers of bsr_tc_load into a shared tile [ROWS][COLS + SKEW].
template <int ROWS, int COLS>
static __device__ __forceinline__ void bsr_tc_store(unsigned short* s,
                                                    const BsrTcRegs<ROWS, COLS>& in) {
  using namespace bsr_tc_tile;
  using Regs = BsrTcRegs<ROWS, COLS>;
#pragma unroll
  for (int i = 0; i < Regs::N; ++i) {
    const int idx = threadIdx.x + i * THREADS;
    if (idx < ROWS * Regs::VPR)
      *reinterpret_cast<uint4*>(s + (idx / Regs::VPR) * (COLS + SKEW) +
                                (idx % Regs::VPR) * VEC) = in.v[i];
  }
}

// The activation tile and the weight block of list entry p of a product kernel.
template <int B>
struct BsrTcStage {
  BsrTcRegs<bsr_tc_tile::TOK, B> act;
  BsrTcRegs<B, B> w;
};

template <int B>
static __device__ __forceinline__ BsrTcStage<B> bsr_tc_load_stage(
    const unsigned short* act, int ld_act, int tokens, int act_cols, bool vec_act, int t0,
    const unsigned* __restrict__ idx, const unsigned* __restrict__ ids,
    const unsigned short* values, int p) {
  BsrTcStage<B> s;
  s.act = bsr_tc_load<bsr_tc_tile::TOK, B>(act, ld_act, t0, (int)idx[p] * B, tokens, act_cols,
                                           vec_act);
  s.w = bsr_tc_load<B, B>(values + (size_t)ids[p] * B * B, B, 0, 0, B, B, true);
  return s;
}

// out[t, line·B + n] = Σ over the line's list entries p of act[t, idx[p]·B + k] · Wp(k, n),
// with Wp(k, n) = block ids[p] at [n][k] (W_T: forward) or [k][n] (dgrad).
template <int B, bool W_T>
static __device__ __forceinline__ void bsr_tc_product(
    const __nv_bfloat16* __restrict__ act_, int tokens, int act_cols, int ld_act,
    const unsigned* __restrict__ ptr, const unsigned* __restrict__ idx,
    const unsigned* __restrict__ ids, const __nv_bfloat16* __restrict__ values_,
    float* __restrict__ out, int out_cols, int ld_out) {
  using namespace bsr_tc_tile;
  using namespace nvcuda;
  constexpr int FN = B / FRAG;  // accumulator fragments per warp
  constexpr int LDA = B + SKEW, LDW = B + SKEW;
  using LayoutW = typename svlp_if<W_T, wmma::col_major, wmma::row_major>::type;
  __shared__ __align__(128) unsigned short act_s[TOK * LDA];
  __shared__ __align__(128) unsigned short w_s[B * LDW];
  __shared__ __align__(128) float stage_s[WARPS * FRAG * FRAG];

  const unsigned short* act = reinterpret_cast<const unsigned short*>(act_);
  const unsigned short* values = reinterpret_cast<const unsigned short*>(values_);
  const int line = blockIdx.y, t0 = blockIdx.x * TOK;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bool vec_act = ld_act % VEC == 0 && svlp_aligned16(act);
  const int begin = ptr[line], end = ptr[line + 1];

  wmma::fragment<wmma::accumulator, FRAG, FRAG, FRAG, float> acc[FN];
#pragma unroll
  for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[j], 0.f);

  BsrTcStage<B> next;
  if (begin < end)
    next = bsr_tc_load_stage<B>(act, ld_act, tokens, act_cols, vec_act, t0, idx, ids, values,
                                begin);
  for (int p = begin; p < end; ++p) {
    bsr_tc_store<TOK, B>(act_s, next.act);
    bsr_tc_store<B, B>(w_s, next.w);
    __syncthreads();
    if (p + 1 < end)  // the next block's global loads overlap this block's MMAs
      next = bsr_tc_load_stage<B>(act, ld_act, tokens, act_cols, vec_act, t0, idx, ids,
                                  values, p + 1);
    const __nv_bfloat16* as = reinterpret_cast<const __nv_bfloat16*>(act_s);
    const __nv_bfloat16* ws = reinterpret_cast<const __nv_bfloat16*>(w_s);
#pragma unroll
    for (int kk = 0; kk < B; kk += FRAG) {
      wmma::fragment<wmma::matrix_a, FRAG, FRAG, FRAG, __nv_bfloat16, wmma::row_major> fa;
      wmma::load_matrix_sync(fa, as + warp * FRAG * LDA + kk, LDA);
#pragma unroll
      for (int j = 0; j < FN; ++j) {
        wmma::fragment<wmma::matrix_b, FRAG, FRAG, FRAG, __nv_bfloat16, LayoutW> fb;
        const int n = j * FRAG;
        wmma::load_matrix_sync(fb, ws + (W_T ? n * LDW + kk : kk * LDW + n), LDW);
        wmma::mma_sync(acc[j], fa, fb, acc[j]);
      }
    }
    __syncthreads();
  }

  float* stage = stage_s + warp * FRAG * FRAG;
#pragma unroll
  for (int j = 0; j < FN; ++j) {
    wmma::store_matrix_sync(stage, acc[j], FRAG, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < FRAG * FRAG; e += 32) {
      const int t = t0 + warp * FRAG + e / FRAG, c = line * B + j * FRAG + e % FRAG;
      if (t < tokens && c < out_cols) out[(size_t)t * ld_out + c] = stage[e];
    }
    __syncwarp();
  }
}

// dW for stored block blockIdx.x (block row blk_row[k], block column col_idx[k]):
// out[k·B·B + m·B + n] = Σ_t dy[t, blk_row·B + m] · x[t, col_idx·B + n].
template <int B>
static __device__ __forceinline__ void bsr_tc_wgrad(
    const __nv_bfloat16* __restrict__ dy_, int ld_dy, int rows,
    const __nv_bfloat16* __restrict__ x_, int ld_x, int cols, int tokens,
    const unsigned* __restrict__ blk_row, const unsigned* __restrict__ col_idx,
    float* __restrict__ out) {
  using namespace bsr_tc_tile;
  using namespace nvcuda;
  constexpr int FPS = B / FRAG;              // fragments per side
  constexpr int SLICES = WARPS / (FPS * FPS);  // warps sharing one fragment
  constexpr int LD = B + SKEW;
  static_assert(SLICES * FPS * FPS == WARPS, "warps cover the fragments");
  __shared__ __align__(128) unsigned short dy_s[TOK * LD];
  __shared__ __align__(128) unsigned short x_s[TOK * LD];
  __shared__ __align__(128) float stage_s[WARPS * FRAG * FRAG];

  const unsigned short* dy = reinterpret_cast<const unsigned short*>(dy_);
  const unsigned short* x = reinterpret_cast<const unsigned short*>(x_);
  const int k = blockIdx.x;
  const int r0 = (int)blk_row[k] * B, c0 = (int)col_idx[k] * B;
  const int warp = threadIdx.x / 32;
  const int frag = warp % (FPS * FPS), slice = warp / (FPS * FPS);
  const int fm = (frag / FPS) * FRAG, fn = (frag % FPS) * FRAG;
  const bool vec_dy = ld_dy % VEC == 0 && svlp_aligned16(dy);
  const bool vec_x = ld_x % VEC == 0 && svlp_aligned16(x);

  wmma::fragment<wmma::accumulator, FRAG, FRAG, FRAG, float> acc;
  wmma::fill_fragment(acc, 0.f);
  BsrTcRegs<TOK, B> ndy = bsr_tc_load<TOK, B>(dy, ld_dy, 0, r0, tokens, rows, vec_dy);
  BsrTcRegs<TOK, B> nx = bsr_tc_load<TOK, B>(x, ld_x, 0, c0, tokens, cols, vec_x);
  for (int t0 = 0; t0 < tokens; t0 += TOK) {
    bsr_tc_store<TOK, B>(dy_s, ndy);
    bsr_tc_store<TOK, B>(x_s, nx);
    __syncthreads();
    if (t0 + TOK < tokens) {
      ndy = bsr_tc_load<TOK, B>(dy, ld_dy, t0 + TOK, r0, tokens, rows, vec_dy);
      nx = bsr_tc_load<TOK, B>(x, ld_x, t0 + TOK, c0, tokens, cols, vec_x);
    }
    const __nv_bfloat16* dys = reinterpret_cast<const __nv_bfloat16*>(dy_s);
    const __nv_bfloat16* xs = reinterpret_cast<const __nv_bfloat16*>(x_s);
#pragma unroll
    for (int kk = slice * FRAG; kk < TOK; kk += SLICES * FRAG) {
      // A(m, t) = dy_s[t][m]: column-major; B(t, n) = x_s[t][n]: row-major.
      wmma::fragment<wmma::matrix_a, FRAG, FRAG, FRAG, __nv_bfloat16, wmma::col_major> fa;
      wmma::fragment<wmma::matrix_b, FRAG, FRAG, FRAG, __nv_bfloat16, wmma::row_major> fb;
      wmma::load_matrix_sync(fa, dys + kk * LD + fm, LD);
      wmma::load_matrix_sync(fb, xs + kk * LD + fn, LD);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    __syncthreads();
  }

  wmma::store_matrix_sync(stage_s + warp * FRAG * FRAG, acc, FRAG, wmma::mem_row_major);
  __syncthreads();
  for (int e = threadIdx.x; e < B * B; e += THREADS) {
    const int m = e / B, n = e % B;
    const int f = (m / FRAG) * FPS + n / FRAG, at = (m % FRAG) * FRAG + n % FRAG;
    float sum = 0.f;
#pragma unroll
    for (int s = 0; s < SLICES; ++s) sum += stage_s[(s * FPS * FPS + f) * FRAG * FRAG + at];
    out[(size_t)k * B * B + e] = sum;
  }
}

// Y = X·Wᵀ with B = 16: x [tokens, cols] (ld_x), y [tokens, rows] (ld_y); blockIdx.y is a
// block row of W.
extern "C" __global__ void __launch_bounds__(bsr_tc_tile::THREADS)
bsr_bf16_forward_b16(const __nv_bfloat16* __restrict__ x, int tokens, int cols, int ld_x,
    const unsigned* __restrict__ block_row_ptr, const unsigned* __restrict__ block_col_idx,
    const unsigned* __restrict__ block_ids, const __nv_bfloat16* __restrict__ values,
    float* __restrict__ y, int rows, int ld_y) {
  bsr_tc_product<16, true>(x, tokens, cols, ld_x, block_row_ptr, block_col_idx, block_ids,
                          values, y, rows, ld_y);
}

// Y = X·Wᵀ with B = 32: x [tokens, cols] (ld_x), y [tokens, rows] (ld_y); blockIdx.y is a
// block row of W.
extern "C" __global__ void __launch_bounds__(bsr_tc_tile::THREADS)
bsr_bf16_forward_b32(const __nv_bfloat16* __restrict__ x, int tokens, int cols, int ld_x,
    const unsigned* __restrict__ block_row_ptr, const unsigned* __restrict__ block_col_idx,
    const unsigned* __restrict__ block_ids, const __nv_bfloat16* __restrict__ values,
    float* __restrict__ y, int rows, int ld_y) {
  bsr_tc_product<32, true>(x, tokens, cols, ld_x, block_row_ptr, block_col_idx, block_ids,
                          values, y, rows, ld_y);
}

// dX = dY·W with B = 16: dy [tokens, rows] (ld_dy), dx [tokens, cols] (ld_dx); blockIdx.y
// is a block column of W, walked through the transposed block index.
extern "C" __global__ void __launch_bounds__(bsr_tc_tile::THREADS)
bsr_bf16_dgrad_b16(const __nv_bfloat16* __restrict__ dy, int tokens, int rows, int ld_dy,
    const unsigned* __restrict__ block_col_ptr, const unsigned* __restrict__ block_row_idx,
    const unsigned* __restrict__ block_ids, const __nv_bfloat16* __restrict__ values,
    float* __restrict__ dx, int cols, int ld_dx) {
  bsr_tc_product<16, false>(dy, tokens, rows, ld_dy, block_col_ptr, block_row_idx, block_ids,
                           values, dx, cols, ld_dx);
}

// dX = dY·W with B = 32: dy [tokens, rows] (ld_dy), dx [tokens, cols] (ld_dx); blockIdx.y
// is a block column of W, walked through the transposed block index.
extern "C" __global__ void __launch_bounds__(bsr_tc_tile::THREADS)
bsr_bf16_dgrad_b32(const __nv_bfloat16* __restrict__ dy, int tokens, int rows, int ld_dy,
    const unsigned* __restrict__ block_col_ptr, const unsigned* __restrict__ block_row_idx,
    const unsigned* __restrict__ block_ids, const __nv_bfloat16* __restrict__ values,
    float* __restrict__ dx, int cols, int ld_dx) {
  bsr_tc_product<32, false>(dy, tokens, rows, ld_dy, block_col_ptr, block_row_idx, block_ids,
                           values, dx, cols, ld_dx);
}

// dW with B = 16, one stored block per blockIdx.x: dw [blocks, 16, 16] f32.
extern "C" __global__ void __launch_bounds__(bsr_tc_tile::THREADS)
bsr_bf16_wgrad_b16(const __nv_bfloat16* __restrict__ dy, int ld_dy, int rows,
    const __nv_bfloat16* __restrict__ x, int ld_x, int cols, int tokens,
    const unsigned* __restrict__ block_row, const unsigned* __restrict__ block_col_idx,
    float* __restrict__ dw) {
  bsr_tc_wgrad<16>(dy, ld_dy, rows, x, ld_x, cols, tokens, block_row, block_col_idx, dw);
}

// dW with B = 32, one stored block per blockIdx.x: dw [blocks, 32, 32] f32.
extern "C" __global__ void __launch_bounds__(bsr_tc_tile::THREADS)
bsr_bf16_wgrad_b32(const __nv_bfloat16* __restrict__ dy, int ld_dy, int rows,
    const __nv_bfloat16* __restrict__ x, int ld_x, int cols, int tokens,
    const unsigned* __restrict__ block_row, const unsigned* __restrict__ block_col_idx,
    float* __restrict__ dw) {
  bsr_tc_wgrad<32>(dy, ld_dy, rows, x, ld_x, cols, tokens, block_row, block_col_idx, dw);
}
