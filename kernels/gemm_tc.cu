// Dense GEMM on tensor cores: bf16 or f16 inputs, f32 accumulation, f32 output.
// C = alpha · op(A) · op(B) (+ C when `accumulate`), row-major A, B, C with arbitrary
// leading dimensions and a strided batch over gridDim.z. Transposes as in gemm_f32.cu:
// op(A) is M×K (A stored [M, K] for N, [K, M] for T), op(B) is K×N (B stored [K, N] for N,
// [N, K] for T). Entry points gemm_{bf16,f16}_{nn,nt,tn,tt}.
//
// Work split
//   grid   (ceil(N / BN), ceil(M / BM), batch); blockIdx.z offsets A, B, C by their
//          element strides.
//   block  THREADS = 256 (8 warps) own one BM×BN = 128×128 tile of C; K is walked in
//          BK = 32 slices staged in shared memory in the operand's own memory layout
//          (so a transposed operand is just a col_major WMMA fragment), rows padded by
//          SKEW = 8 elements (16 bytes) against bank conflicts.
//   warp   a WM×WN = 64×32 sub-tile of C (warps arranged 2 down × 4 across): FM×FN = 4×2
//          WMMA 16×16×16 accumulator fragments (f32), two k-steps per BK slice.
//   thread moves two 16-byte vectors (8 elements) of each operand per K slice: one 16-byte
//          load when the leading dimension is a multiple of 8, the base is 16-byte aligned
//          and the 8 elements are in bounds; otherwise bounds-checked 2-byte loads, with
//          elements outside the matrix written as zero (ragged M, N, K all work).
//   Double buffering: two shared stages; the next K slice is loaded into registers while
//   the warps run their MMAs on the current stage, then stored into the other stage.
//   Epilogue: each warp stores a fragment at a time to its own 16×16 f32 staging square
//   (aliasing the operand stages after the main loop) and writes it out bounds-checked.
#include <mma.h>

#include "common.cuh"

namespace gemm_tc_tile {
constexpr int BM = 128;       // rows of C per block
constexpr int BN = 128;       // columns of C per block
constexpr int BK = 32;        // K slice per shared stage
constexpr int WM = 64;        // rows of C per warp
constexpr int WN = 32;        // columns of C per warp
constexpr int FRAG = 16;      // WMMA m = n = k
constexpr int FM = WM / FRAG; // accumulator fragments per warp, down
constexpr int FN = WN / FRAG; // accumulator fragments per warp, across
constexpr int WARPS_N = BN / WN;
constexpr int THREADS = (BM / WM) * (BN / WN) * 32;
constexpr int SKEW = 8;       // padding of every shared row, in elements
constexpr int VEC = 8;        // 16-bit elements per 16-byte vector
// One operand stage holds either [128][BK + SKEW] or [BK][128 + SKEW] elements.
constexpr int STAGE_ELEMS = (128 * (BK + SKEW) > BK * (128 + SKEW)) ? 128 * (BK + SKEW)
                                                                    : BK * (128 + SKEW);
constexpr int LOADS = 128 * BK / VEC / THREADS;  // 16-byte vectors per thread per operand
static_assert(THREADS == 256, "8 warps");
static_assert(LOADS == 2, "two vectors per thread per operand");
static_assert(4 * STAGE_ELEMS * 2 >= (THREADS / 32) * FRAG * FRAG * 4, "staging fits");
}  // namespace gemm_tc_tile

// One operand's share of a K slice, held in registers between the global load and the
// shared store.
struct GemmTcRegs {
  uint4 v[gemm_tc_tile::LOADS];
};

// Loads this thread's vectors of a tile of ROWS × COLS 16-bit elements whose rows are the
// operand's outer (strided) dimension: rows r0.., columns c0.. of a matrix with `rows`
// rows, `cols` columns and leading dimension ld. Outside the matrix reads as zero.
template <int ROWS, int COLS>
static __device__ __forceinline__ GemmTcRegs gemm_tc_load(const unsigned short* __restrict__ p,
                                                          int ld, int r0, int c0, int rows,
                                                          int cols, bool vec) {
  using namespace gemm_tc_tile;
  constexpr int VPR = COLS / VEC;  // vectors per tile row
  static_assert(ROWS * VPR == LOADS * THREADS, "tile covered by the block");
  GemmTcRegs out;
#pragma unroll
  for (int i = 0; i < LOADS; ++i) {
    const int idx = threadIdx.x + i * THREADS;
    const int r = r0 + idx / VPR, c = c0 + (idx % VPR) * VEC;
    out.v[i] = r < rows ? svlp_load8_u16(p + (size_t)r * ld + c, cols - c, vec)
                        : make_uint4(0u, 0u, 0u, 0u);
  }
  return out;
}

// Stores the vectors of gemm_tc_load into a shared stage [ROWS][COLS + SKEW].
template <int ROWS, int COLS>
static __device__ __forceinline__ void gemm_tc_store(unsigned short* s, const GemmTcRegs& in) {
  using namespace gemm_tc_tile;
  constexpr int VPR = COLS / VEC;
#pragma unroll
  for (int i = 0; i < LOADS; ++i) {
    const int idx = threadIdx.x + i * THREADS;
    *reinterpret_cast<uint4*>(s + (idx / VPR) * (COLS + SKEW) + (idx % VPR) * VEC) = in.v[i];
  }
}

// Loads the K slice starting at k0 of op(A) (TA: A stored [K, M]) into registers.
template <bool TA>
static __device__ __forceinline__ GemmTcRegs gemm_tc_load_a(const unsigned short* A, int lda,
                                                            int m0, int k0, int M, int K,
                                                            bool vec) {
  using namespace gemm_tc_tile;
  if (TA) return gemm_tc_load<BK, BM>(A, lda, k0, m0, K, M, vec);
  return gemm_tc_load<BM, BK>(A, lda, m0, k0, M, K, vec);
}

// Loads the K slice starting at k0 of op(B) (TB: B stored [N, K]) into registers.
template <bool TB>
static __device__ __forceinline__ GemmTcRegs gemm_tc_load_b(const unsigned short* B, int ldb,
                                                            int n0, int k0, int N, int K,
                                                            bool vec) {
  using namespace gemm_tc_tile;
  if (TB) return gemm_tc_load<BN, BK>(B, ldb, n0, k0, N, K, vec);
  return gemm_tc_load<BK, BN>(B, ldb, k0, n0, K, N, vec);
}

template <typename T, bool TA, bool TB>
static __device__ __forceinline__ void gemm_tc_body(const T* __restrict__ A_,
                                                    const T* __restrict__ B_,
                                                    float* __restrict__ C, int M, int N, int K,
                                                    int lda, int ldb, int ldc, int stride_a,
                                                    int stride_b, int stride_c, float alpha,
                                                    int accumulate) {
  using namespace gemm_tc_tile;
  using namespace nvcuda;
  // Stages: [A0, A1, B0, B1], each STAGE_ELEMS 16-bit elements.
  __shared__ __align__(128) unsigned short smem[4 * STAGE_ELEMS];

  const size_t z = blockIdx.z;
  const unsigned short* A = reinterpret_cast<const unsigned short*>(A_) + z * (size_t)stride_a;
  const unsigned short* B = reinterpret_cast<const unsigned short*>(B_) + z * (size_t)stride_b;
  C += z * (size_t)stride_c;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const bool vec_a = lda % VEC == 0 && svlp_aligned16(A);
  const bool vec_b = ldb % VEC == 0 && svlp_aligned16(B);

  // Shared layouts: A is [BM][BK+SKEW] (row_major fragments) or, transposed, [BK][BM+SKEW]
  // (col_major fragments); B is [BK][BN+SKEW] (row_major) or [BN][BK+SKEW] (col_major).
  constexpr int LDA_S = TA ? BM + SKEW : BK + SKEW;
  constexpr int LDB_S = TB ? BK + SKEW : BN + SKEW;
  using LayoutA = typename svlp_if<TA, wmma::col_major, wmma::row_major>::type;
  using LayoutB = typename svlp_if<TB, wmma::col_major, wmma::row_major>::type;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;

  wmma::fragment<wmma::accumulator, FRAG, FRAG, FRAG, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  const int tiles = (K + BK - 1) / BK;
  GemmTcRegs ra = gemm_tc_load_a<TA>(A, lda, m0, 0, M, K, vec_a);
  GemmTcRegs rb = gemm_tc_load_b<TB>(B, ldb, n0, 0, N, K, vec_b);
  if (TA) gemm_tc_store<BK, BM>(smem, ra); else gemm_tc_store<BM, BK>(smem, ra);
  if (TB) gemm_tc_store<BN, BK>(smem + 2 * STAGE_ELEMS, rb);
  else gemm_tc_store<BK, BN>(smem + 2 * STAGE_ELEMS, rb);
  __syncthreads();

  for (int kt = 0; kt < tiles; ++kt) {
    const int cur = kt & 1;
    const bool more = kt + 1 < tiles;
    if (more) {
      ra = gemm_tc_load_a<TA>(A, lda, m0, (kt + 1) * BK, M, K, vec_a);
      rb = gemm_tc_load_b<TB>(B, ldb, n0, (kt + 1) * BK, N, K, vec_b);
    }
    const T* as = reinterpret_cast<const T*>(smem + cur * STAGE_ELEMS);
    const T* bs = reinterpret_cast<const T*>(smem + (2 + cur) * STAGE_ELEMS);
#pragma unroll
    for (int kk = 0; kk < BK; kk += FRAG) {
      wmma::fragment<wmma::matrix_a, FRAG, FRAG, FRAG, T, LayoutA> fa[FM];
      wmma::fragment<wmma::matrix_b, FRAG, FRAG, FRAG, T, LayoutB> fb[FN];
#pragma unroll
      for (int i = 0; i < FM; ++i) {
        const int m = wm + i * FRAG;
        wmma::load_matrix_sync(fa[i], as + (TA ? kk * LDA_S + m : m * LDA_S + kk), LDA_S);
      }
#pragma unroll
      for (int j = 0; j < FN; ++j) {
        const int n = wn + j * FRAG;
        wmma::load_matrix_sync(fb[j], bs + (TB ? n * LDB_S + kk : kk * LDB_S + n), LDB_S);
      }
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    if (more) {
      unsigned short* na = smem + (cur ^ 1) * STAGE_ELEMS;
      unsigned short* nb = smem + (2 + (cur ^ 1)) * STAGE_ELEMS;
      if (TA) gemm_tc_store<BK, BM>(na, ra); else gemm_tc_store<BM, BK>(na, ra);
      if (TB) gemm_tc_store<BN, BK>(nb, rb); else gemm_tc_store<BK, BN>(nb, rb);
    }
    __syncthreads();
  }

  // Epilogue through a per-warp 16×16 f32 staging square (the stages are free now: the
  // loop ended with a barrier).
  float* stage = reinterpret_cast<float*>(smem) + warp * FRAG * FRAG;
#pragma unroll
  for (int i = 0; i < FM; ++i) {
#pragma unroll
    for (int j = 0; j < FN; ++j) {
      wmma::store_matrix_sync(stage, acc[i][j], FRAG, wmma::mem_row_major);
      __syncwarp();
      const int row0 = m0 + wm + i * FRAG, col0 = n0 + wn + j * FRAG;
#pragma unroll
      for (int e = lane; e < FRAG * FRAG; e += 32) {
        const int r = row0 + e / FRAG, c = col0 + e % FRAG;
        if (r < M && c < N) {
          float* dst = C + (size_t)r * ldc + c;
          const float v = alpha * stage[e];
          *dst = accumulate ? *dst + v : v;
        }
      }
      __syncwarp();
    }
  }
}

// C = alpha·op(A)·op(B) (+C) in bf16 with f32 accumulation: A [M, K], B [K, N].
extern "C" __global__ void __launch_bounds__(gemm_tc_tile::THREADS)
gemm_bf16_nn(const __nv_bfloat16* __restrict__ A, const __nv_bfloat16* __restrict__ B, float* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_tc_body<__nv_bfloat16, false, false>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c,
                              alpha, accumulate);
}

// C = alpha·op(A)·op(B) (+C) in bf16 with f32 accumulation: A [M, K], B [N, K].
extern "C" __global__ void __launch_bounds__(gemm_tc_tile::THREADS)
gemm_bf16_nt(const __nv_bfloat16* __restrict__ A, const __nv_bfloat16* __restrict__ B, float* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_tc_body<__nv_bfloat16, false, true>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c,
                              alpha, accumulate);
}

// C = alpha·op(A)·op(B) (+C) in bf16 with f32 accumulation: A [K, M], B [K, N].
extern "C" __global__ void __launch_bounds__(gemm_tc_tile::THREADS)
gemm_bf16_tn(const __nv_bfloat16* __restrict__ A, const __nv_bfloat16* __restrict__ B, float* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_tc_body<__nv_bfloat16, true, false>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c,
                              alpha, accumulate);
}

// C = alpha·op(A)·op(B) (+C) in bf16 with f32 accumulation: A [K, M], B [N, K].
extern "C" __global__ void __launch_bounds__(gemm_tc_tile::THREADS)
gemm_bf16_tt(const __nv_bfloat16* __restrict__ A, const __nv_bfloat16* __restrict__ B, float* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_tc_body<__nv_bfloat16, true, true>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c,
                              alpha, accumulate);
}

// C = alpha·op(A)·op(B) (+C) in f16 with f32 accumulation: A [M, K], B [K, N].
extern "C" __global__ void __launch_bounds__(gemm_tc_tile::THREADS)
gemm_f16_nn(const __half* __restrict__ A, const __half* __restrict__ B, float* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_tc_body<__half, false, false>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c,
                              alpha, accumulate);
}

// C = alpha·op(A)·op(B) (+C) in f16 with f32 accumulation: A [M, K], B [N, K].
extern "C" __global__ void __launch_bounds__(gemm_tc_tile::THREADS)
gemm_f16_nt(const __half* __restrict__ A, const __half* __restrict__ B, float* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_tc_body<__half, false, true>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c,
                              alpha, accumulate);
}

// C = alpha·op(A)·op(B) (+C) in f16 with f32 accumulation: A [K, M], B [K, N].
extern "C" __global__ void __launch_bounds__(gemm_tc_tile::THREADS)
gemm_f16_tn(const __half* __restrict__ A, const __half* __restrict__ B, float* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_tc_body<__half, true, false>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c,
                              alpha, accumulate);
}

// C = alpha·op(A)·op(B) (+C) in f16 with f32 accumulation: A [K, M], B [N, K].
extern "C" __global__ void __launch_bounds__(gemm_tc_tile::THREADS)
gemm_f16_tt(const __half* __restrict__ A, const __half* __restrict__ B, float* __restrict__ C,
    int M, int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_tc_body<__half, true, true>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c,
                              alpha, accumulate);
}
