// Emulator self-test: a bf16 tensor-core GEMM through nvcuda::wmma, f32 accumulation.
//   emu_selftest_wmma_bf16  C[M, N] = A[M, K] · B[K, N], all row-major, M, N, K multiples
//                           of 16
// Work split: a block of 4 warps owns a 32×32 tile of C; warp w owns the 16×16 sub-tile
// (w / 2, w % 2) and walks K in 16-wide steps, loading its A and B fragments straight from
// global memory (B col_major when b_col_major: B stored [N, K]).
#include <cuda_bf16.h>
#include <mma.h>

using namespace nvcuda;

extern "C" __global__ void emu_selftest_wmma_bf16(const __nv_bfloat16* __restrict__ A,
                                                  const __nv_bfloat16* __restrict__ B,
                                                  float* __restrict__ C, int M, int N, int K,
                                                  int b_col_major) {
  const int warp = threadIdx.x / 32;
  const int row = blockIdx.y * 32 + (warp / 2) * 16;
  const int col = blockIdx.x * 32 + (warp % 2) * 16;
  if (row >= M || col >= N) return;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  for (int k = 0; k < K; k += 16) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
    wmma::load_matrix_sync(a, A + row * K + k, K);
    if (b_col_major) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
      wmma::load_matrix_sync(b, B + col * K + k, K);
      wmma::mma_sync(acc, a, b, acc);
    } else {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
      wmma::load_matrix_sync(b, B + k * N + col, N);
      wmma::mma_sync(acc, a, b, acc);
    }
  }
  wmma::store_matrix_sync(C + row * N + col, acc, N, wmma::mem_row_major);
}
