// Dense f32 GEMM on CUDA cores: C = alpha · op(A) · op(B) (+ C when `accumulate`), with
// row-major A, B, C, arbitrary leading dimensions, and a strided batch over gridDim.z.
//
// op(A) is M×K: A is stored [M, K] (N: no transpose) or [K, M] (T). op(B) is K×N: B is
// stored [K, N] (N) or [N, K] (T). Entry points gemm_f32_{nn,nt,tn,tt} (first letter: A).
// Forward Y = X·Wᵀ is NT, dX = dY·W is NN, dW = dYᵀ·X is TN.
//
// Work split
//   grid   (ceil(N / BN), ceil(M / BM), batch); blockIdx.z selects matrices
//          A + z·stride_a, B + z·stride_b, C + z·stride_c (element strides).
//   block  THREADS = 256 threads own one BM×BN = 128×128 tile of C. K is walked in BK = 8
//          slices; each slice of op(A) (BM×BK) and op(B) (BK×BN) is staged in shared memory,
//          both stored k-major (As[k][m], Bs[k][n]) so the inner loop reads float4s.
//   thread a TM×TN = 8×8 register tile of C: rows {ty·4 + i, 64 + ty·4 + i} and columns
//          {tx·4 + j, 64 + tx·4 + j} for i, j < 4 (tx = t % 16, ty = t / 16) — two 4-wide
//          strips per dimension keep the float4 shared-memory reads conflict free.
//   Each thread moves 4 elements of A and 4 of B per K slice: one 16-byte load when the
//   leading dimension is a multiple of 4, the base is 16-byte aligned and the 4 elements
//   are in bounds; otherwise 4 bounds-checked scalar loads (ragged edges read as 0).
//   Double buffering: two shared-memory stages; while the block computes on one stage, the
//   next K slice is loaded from global memory into registers, then stored into the other
//   stage — one __syncthreads per K slice.
#include "common.cuh"

namespace gemm_f32_tile {
constexpr int BM = 128;        // rows of C per block
constexpr int BN = 128;        // columns of C per block
constexpr int BK = 8;          // K slice per shared-memory stage
constexpr int TM = 8;          // rows of C per thread
constexpr int TN = 8;          // columns of C per thread
constexpr int THREADS = 256;   // (BM / TM) · (BN / TN)
constexpr int PAD = 4;         // shared-memory row padding (keeps float4 alignment)
constexpr int SA = BM + PAD;   // shared row stride of As
constexpr int SB = BN + PAD;   // shared row stride of Bs
static_assert((BM / TM) * (BN / TN) == THREADS, "one register tile per thread");
static_assert(BM * BK == 4 * THREADS && BN * BK == 4 * THREADS, "4 elements per thread");
}  // namespace gemm_f32_tile

// Loads this thread's 4 elements of a K slice of one operand.
//
// KMAJOR: the operand is stored with k as its outer dimension ([K, X] with leading dim
// ld), so the tile is BK rows × 128 contiguous x; this thread reads row t / 32, columns
// (t % 32)·4 .. +3. Otherwise it is stored [X, K]: the tile is 128 rows × BK contiguous k;
// this thread reads row t / 2, k offset (t % 2)·4 .. +3.
template <bool KMAJOR>
static __device__ __forceinline__ float4 gemm_f32_load(const float* __restrict__ p, int ld,
                                                       int x0, int k0, int X, int K,
                                                       bool vec) {
  const int t = threadIdx.x;
  int x, k;
  if (KMAJOR) {
    k = k0 + t / 32;
    x = x0 + (t % 32) * 4;
  } else {
    x = x0 + t / 2;
    k = k0 + (t % 2) * 4;
  }
  float4 r = make_float4(0.f, 0.f, 0.f, 0.f);
  if (KMAJOR) {
    if (k < K) {
      const float* src = p + (size_t)k * ld + x;
      if (vec && x + 3 < X) {
        r = *reinterpret_cast<const float4*>(src);
      } else {
        if (x + 0 < X) r.x = src[0];
        if (x + 1 < X) r.y = src[1];
        if (x + 2 < X) r.z = src[2];
        if (x + 3 < X) r.w = src[3];
      }
    }
  } else {
    if (x < X) {
      const float* src = p + (size_t)x * ld + k;
      if (vec && k + 3 < K) {
        r = *reinterpret_cast<const float4*>(src);
      } else {
        if (k + 0 < K) r.x = src[0];
        if (k + 1 < K) r.y = src[1];
        if (k + 2 < K) r.z = src[2];
        if (k + 3 < K) r.w = src[3];
      }
    }
  }
  return r;
}

// Stores the 4 elements loaded by gemm_f32_load into a k-major stage s[k][x] (row stride S).
template <bool KMAJOR, int S>
static __device__ __forceinline__ void gemm_f32_store(float* s, float4 r) {
  const int t = threadIdx.x;
  if (KMAJOR) {
    *reinterpret_cast<float4*>(s + (t / 32) * S + (t % 32) * 4) = r;
  } else {
    const int x = t / 2, k = (t % 2) * 4;
    s[(k + 0) * S + x] = r.x;
    s[(k + 1) * S + x] = r.y;
    s[(k + 2) * S + x] = r.z;
    s[(k + 3) * S + x] = r.w;
  }
}

// Writes 4 consecutive outputs of one row (alpha·v, plus the old C when accumulating).
static __device__ __forceinline__ void gemm_f32_store_c(float* __restrict__ c, int row, int col,
                                                        int M, int N, int ldc, float4 v,
                                                        float alpha, int accumulate,
                                                        bool vec) {
  if (row >= M) return;
  float* dst = c + (size_t)row * ldc + col;
  v.x *= alpha;
  v.y *= alpha;
  v.z *= alpha;
  v.w *= alpha;
  if (vec && col + 3 < N) {
    if (accumulate) {
      const float4 old = *reinterpret_cast<const float4*>(dst);
      v.x += old.x;
      v.y += old.y;
      v.z += old.z;
      v.w += old.w;
    }
    *reinterpret_cast<float4*>(dst) = v;
  } else {
    const float vals[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (col + j < N) dst[j] = accumulate ? dst[j] + vals[j] : vals[j];
    }
  }
}

template <bool TA, bool TB>
static __device__ __forceinline__ void gemm_f32_body(const float* __restrict__ A,
                                                     const float* __restrict__ B,
                                                     float* __restrict__ C, int M, int N,
                                                     int K, int lda, int ldb, int ldc,
                                                     int stride_a, int stride_b, int stride_c,
                                                     float alpha, int accumulate) {
  using namespace gemm_f32_tile;
  __shared__ __align__(16) float As[2][BK * SA];
  __shared__ __align__(16) float Bs[2][BK * SB];

  const size_t z = blockIdx.z;
  A += z * (size_t)stride_a;
  B += z * (size_t)stride_b;
  C += z * (size_t)stride_c;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const bool vec_a = lda % 4 == 0 && svlp_aligned16(A);
  const bool vec_b = ldb % 4 == 0 && svlp_aligned16(B);
  const bool vec_c = ldc % 4 == 0 && svlp_aligned16(C);

  // A is k-major in memory when transposed ([K, M]); B when not transposed ([K, N]).
  const int tiles = (K + BK - 1) / BK;
  float4 ra = gemm_f32_load<TA>(A, lda, m0, 0, M, K, vec_a);
  float4 rb = gemm_f32_load<!TB>(B, ldb, n0, 0, N, K, vec_b);
  gemm_f32_store<TA, SA>(As[0], ra);
  gemm_f32_store<!TB, SB>(Bs[0], rb);
  __syncthreads();

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

  for (int kt = 0; kt < tiles; ++kt) {
    const int cur = kt & 1;
    const bool more = kt + 1 < tiles;
    if (more) {
      ra = gemm_f32_load<TA>(A, lda, m0, (kt + 1) * BK, M, K, vec_a);
      rb = gemm_f32_load<!TB>(B, ldb, n0, (kt + 1) * BK, N, K, vec_b);
    }
    const float* as = As[cur];
    const float* bs = Bs[cur];
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      const float4 a0 = *reinterpret_cast<const float4*>(as + k * SA + ty * 4);
      const float4 a1 = *reinterpret_cast<const float4*>(as + k * SA + 64 + ty * 4);
      const float4 b0 = *reinterpret_cast<const float4*>(bs + k * SB + tx * 4);
      const float4 b1 = *reinterpret_cast<const float4*>(bs + k * SB + 64 + tx * 4);
      const float a[TM] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[TN] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    if (more) {
      gemm_f32_store<TA, SA>(As[cur ^ 1], ra);
      gemm_f32_store<!TB, SB>(Bs[cur ^ 1], rb);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int col = n0 + h * 64 + tx * 4;
      const float4 v = make_float4(acc[i][h * 4 + 0], acc[i][h * 4 + 1], acc[i][h * 4 + 2],
                                   acc[i][h * 4 + 3]);
      gemm_f32_store_c(C, row, col, M, N, ldc, v, alpha, accumulate, vec_c);
    }
  }
}

// C = alpha·A·B (+C): A [M, K], B [K, N].
extern "C" __global__ void __launch_bounds__(gemm_f32_tile::THREADS)
gemm_f32_nn(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M,
    int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_f32_body<false, false>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, alpha,
                        accumulate);
}

// C = alpha·A·Bᵀ (+C): A [M, K], B [N, K].
extern "C" __global__ void __launch_bounds__(gemm_f32_tile::THREADS)
gemm_f32_nt(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M,
    int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_f32_body<false, true>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, alpha,
                        accumulate);
}

// C = alpha·Aᵀ·B (+C): A [K, M], B [K, N].
extern "C" __global__ void __launch_bounds__(gemm_f32_tile::THREADS)
gemm_f32_tn(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M,
    int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_f32_body<true, false>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, alpha,
                        accumulate);
}

// C = alpha·Aᵀ·Bᵀ (+C): A [K, M], B [N, K].
extern "C" __global__ void __launch_bounds__(gemm_f32_tile::THREADS)
gemm_f32_tt(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M,
    int N, int K, int lda, int ldb, int ldc, int stride_a, int stride_b, int stride_c,
    float alpha, int accumulate) {
  gemm_f32_body<true, true>(A, B, C, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, alpha,
                        accumulate);
}
