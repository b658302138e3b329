// Emulator self-test: a classic tiled shared-memory f32 GEMM (the emulator's speed
// reference) — C[M, N] = A[M, K] · B[K, N], row-major, any sizes.
// Work split: a block of TILE×TILE threads owns a TILE×TILE tile of C; thread (x, y) owns
// C[by·TILE + y][bx·TILE + x]; K is walked in TILE-wide slices staged in shared memory.
#include "selftest.cuh"

constexpr int SELFTEST_TILE = 16;

extern "C" __global__ void emu_selftest_gemm_tiled(const float* __restrict__ A,
                                                   const float* __restrict__ B,
                                                   float* __restrict__ C, int M, int N, int K) {
  __shared__ float As[SELFTEST_TILE][SELFTEST_TILE];
  __shared__ float Bs[SELFTEST_TILE][SELFTEST_TILE + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * SELFTEST_TILE + ty, col = blockIdx.x * SELFTEST_TILE + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += SELFTEST_TILE) {
    As[ty][tx] = (row < M && k0 + tx < K) ? A[row * K + k0 + tx] : 0.0f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? B[(k0 + ty) * N + col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < SELFTEST_TILE; ++k) acc += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  if (row < M && col < N) C[row * N + col] = acc;
}
