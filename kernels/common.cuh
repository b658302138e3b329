// Shared helpers of the sparsevlp kernels: dynamic shared memory, warp/block reductions,
// half/bf16 conversion, exactly rounded float arithmetic (no FMA contraction), GELU.
//
// Every kernel file includes this header. The same sources are compiled by nvcc (to PTX)
// and, unchanged, by the host C++ compiler for the CUDA emulator (kernels/emu), which
// force-includes its own shim first; anything the emulator defines itself (for example
// SVLP_DYNAMIC_SHARED) is therefore guarded here.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

// Dynamic shared memory as a typed pointer `name`. Under nvcc every kernel shares one
// 16-byte aligned byte array, so kernels of one file may view it with different types.
#ifndef SVLP_DYNAMIC_SHARED
#define SVLP_DYNAMIC_SHARED(type, name)                                        \
  extern __shared__ __align__(16) unsigned char svlp_dynamic_smem_[];          \
  type* name = reinterpret_cast<type*>(svlp_dynamic_smem_)
#endif

// NVRTC (run-time compilation on a GPU machine whose build had no nvcc) has no <cmath>:
// give the two float specials the kernels use a definition there.
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif

// All lanes of a warp.
constexpr unsigned SVLP_FULL_MASK = 0xffffffffu;
// Threads per warp.
constexpr int SVLP_WARP = 32;

// Compile-time type choice (std::conditional without <type_traits>, which NVRTC lacks).
template <bool C, typename A, typename B>
struct svlp_if { using type = A; };
template <typename A, typename B>
struct svlp_if<false, A, B> { using type = B; };

// ceil(a / b) for positive b.
static __device__ __forceinline__ int svlp_ceil_div(int a, int b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------------
// Exactly rounded f32 arithmetic. nvcc contracts `a * b + c` into one FMA by default, the
// CPU reference (Rust) never does; kernels that must match the CPU bit for bit (AdamW) use
// these, which nvcc never fuses. On the host they are the plain operators (ISO C++ mode
// does not contract).
// ---------------------------------------------------------------------------------------
#ifdef __CUDA_ARCH__
static __device__ __forceinline__ float svlp_mul(float a, float b) { return __fmul_rn(a, b); }
static __device__ __forceinline__ float svlp_add(float a, float b) { return __fadd_rn(a, b); }
static __device__ __forceinline__ float svlp_sub(float a, float b) { return __fadd_rn(a, -b); }
#else
static __device__ __forceinline__ float svlp_mul(float a, float b) { return a * b; }
static __device__ __forceinline__ float svlp_add(float a, float b) { return a + b; }
static __device__ __forceinline__ float svlp_sub(float a, float b) { return a - b; }
#endif

// ---------------------------------------------------------------------------------------
// Reductions. Butterfly (xor) shuffles: every lane ends with the result, and the order of
// additions is fixed, so results are deterministic.
// ---------------------------------------------------------------------------------------
static __device__ __forceinline__ float svlp_warp_sum(float v) {
#pragma unroll
  for (int o = SVLP_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(SVLP_FULL_MASK, v, o);
  return v;
}

static __device__ __forceinline__ float svlp_warp_max(float v) {
#pragma unroll
  for (int o = SVLP_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(SVLP_FULL_MASK, v, o));
  return v;
}

// Sum over groups of `WIDTH` consecutive lanes (WIDTH a power of two ≤ 32); every lane of a
// group ends with its group's sum.
template <int WIDTH>
static __device__ __forceinline__ float svlp_group_sum(float v) {
#pragma unroll
  for (int o = WIDTH / 2; o > 0; o >>= 1) v += __shfl_xor_sync(SVLP_FULL_MASK, v, o);
  return v;
}

template <int WIDTH>
static __device__ __forceinline__ float svlp_group_max(float v) {
#pragma unroll
  for (int o = WIDTH / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(SVLP_FULL_MASK, v, o));
  return v;
}

// Block-wide sum for a 1-D block of NT threads (a multiple of 32); every thread gets the
// result. `scratch` is a __shared__ float[NT / 32]. Ends with a barrier, so the scratch can
// be reused right after.
template <int NT>
static __device__ __forceinline__ float svlp_block_sum(float v, float* scratch) {
  constexpr int WARPS = NT / SVLP_WARP;
  const int lane = threadIdx.x % SVLP_WARP, warp = threadIdx.x / SVLP_WARP;
  v = svlp_warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
#pragma unroll
  for (int w = 0; w < WARPS; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

template <int NT>
static __device__ __forceinline__ float svlp_block_max(float v, float* scratch) {
  constexpr int WARPS = NT / SVLP_WARP;
  const int lane = threadIdx.x % SVLP_WARP, warp = threadIdx.x / SVLP_WARP;
  v = svlp_warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = scratch[0];
#pragma unroll
  for (int w = 1; w < WARPS; ++w) total = fmaxf(total, scratch[w]);
  __syncthreads();
  return total;
}

// ---------------------------------------------------------------------------------------
// 16-bit float conversion (no half arithmetic is used anywhere).
// ---------------------------------------------------------------------------------------
static __device__ __forceinline__ float svlp_to_float(float v) { return v; }
static __device__ __forceinline__ float svlp_to_float(__half v) { return __half2float(v); }
static __device__ __forceinline__ float svlp_to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
static __device__ __forceinline__ T svlp_from_float(float v);
template <>
__device__ __forceinline__ float svlp_from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half svlp_from_float<__half>(float v) { return __float2half(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 svlp_from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

// ---------------------------------------------------------------------------------------
// Alignment tests for vector (16-byte) memory access.
// ---------------------------------------------------------------------------------------
static __device__ __forceinline__ bool svlp_aligned16(const void* p) {
  return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

// Eight consecutive 16-bit elements p[0..8) packed into a uint4, of which only the first
// `valid` (0..8) are read (the rest are zero). One 16-byte load when `vec` (p 16-byte
// aligned) and all eight are valid; 2-byte loads otherwise. Used to stage bf16/f16 tiles
// with ragged edges.
static __device__ __forceinline__ uint4 svlp_load8_u16(const unsigned short* p, int valid,
                                                       bool vec) {
  if (vec && valid >= 8) return *reinterpret_cast<const uint4*>(p);
  unsigned e[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) e[j] = j < valid ? (unsigned)p[j] : 0u;
  return make_uint4(e[0] | (e[1] << 16), e[2] | (e[3] << 16), e[4] | (e[5] << 16),
                    e[6] | (e[7] << 16));
}

// ---------------------------------------------------------------------------------------
// GELU, exact erf form, as src/ops/elementwise.rs: ½·x·(1 + erf(x/√2)) and its derivative
// Φ(x) + x·φ(x).
// ---------------------------------------------------------------------------------------
constexpr float SVLP_FRAC_1_SQRT_2 = 0.70710678118654752440f;
constexpr float SVLP_FRAC_1_SQRT_2PI = 0.39894228040143267794f;

static __device__ __forceinline__ float svlp_gelu(float x) {
  return 0.5f * x * (1.f + erff(x * SVLP_FRAC_1_SQRT_2));
}

static __device__ __forceinline__ float svlp_gelu_grad(float x, float dy) {
  const float cdf = 0.5f * (1.f + erff(x * SVLP_FRAC_1_SQRT_2));
  const float pdf = SVLP_FRAC_1_SQRT_2PI * expf(-0.5f * x * x);
  return dy * (cdf + x * pdf);
}

// ---------------------------------------------------------------------------------------
// Deterministic column sums of a row-major [rows, n] matrix (bias / LayerNorm parameter
// gradients), pass 1: a block of (SVLP_COLSUM_COLS, SVLP_COLSUM_ROW_THREADS) threads owns
// SVLP_COLSUM_COLS columns of one chunk of rows; see bias_gelu.cu for the full scheme.
// ---------------------------------------------------------------------------------------
constexpr int SVLP_COLSUM_COLS = 32;        // columns per block
constexpr int SVLP_COLSUM_ROW_THREADS = 8;  // threads down the rows of a block

// Sums values v(row, col) over the rows of chunk blockIdx.y (rows_per_chunk rows) for each
// of the block's columns, NSUM sums at once (v returns them through `out`). Thread
// (tx, ty) covers rows ty, ty + 8, …; the 8 partial sums of a column are then added in ty
// order and the block writes partial[k][blockIdx.y · ld + col] for sum k.
template <int NSUM, typename V>
static __device__ __forceinline__ void svlp_column_partial(float* const (&partial)[NSUM], int ld,
                                                           int rows, int n, int rows_per_chunk,
                                                           V v) {
  __shared__ float sums[NSUM][SVLP_COLSUM_ROW_THREADS][SVLP_COLSUM_COLS + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int col = blockIdx.x * SVLP_COLSUM_COLS + tx;
  const int r0 = blockIdx.y * rows_per_chunk;
  const int r1 = min(rows, r0 + rows_per_chunk);
  float s[NSUM];
#pragma unroll
  for (int k = 0; k < NSUM; ++k) s[k] = 0.f;
  if (col < n) {
    for (int r = r0 + ty; r < r1; r += SVLP_COLSUM_ROW_THREADS) {
      float val[NSUM];
      v(r, col, val);
#pragma unroll
      for (int k = 0; k < NSUM; ++k) s[k] += val[k];
    }
  }
#pragma unroll
  for (int k = 0; k < NSUM; ++k) sums[k][ty][tx] = s[k];
  __syncthreads();
  if (ty == 0 && col < n) {
#pragma unroll
    for (int k = 0; k < NSUM; ++k) {
      float total = sums[k][0][tx];
#pragma unroll
      for (int j = 1; j < SVLP_COLSUM_ROW_THREADS; ++j) total += sums[k][j][tx];
      partial[k][(size_t)blockIdx.y * ld + col] = total;
    }
  }
}

// Counter-based dropout (the CPU rule `hash_uniform(seed, i) >= p` of src/rng.rs and
// src/ops/dropout.rs): element i is kept iff (mix64(seed ^ mix64(i)) >> 40) >= threshold,
// threshold = ceil(p · 2^24), with mix64 the SplitMix64 finaliser.
static __device__ __forceinline__ unsigned long long svlp_mix64(unsigned long long z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Whether element i survives dropout with `threshold` under `seed`.
static __device__ __forceinline__ bool svlp_dropout_keep(unsigned long long seed,
                                                         unsigned long long i,
                                                         unsigned threshold) {
  return (unsigned)(svlp_mix64(seed ^ svlp_mix64(i)) >> 40) >= threshold;
}
