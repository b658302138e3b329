// Copies of token ranges between [B, T, h] activations: joining two streams along the
// token axis (ViLT's text + image sequence) and splitting them again.
//
// Work split
//   copy_rows_f32 copies, for every batch row b, `len` contiguous floats from
//   src[b·src_stride + src_offset] to dst[b·dst_stride + dst_offset]. Grid-stride loop
//   over the B·len elements: THREADS = 256 threads per block, each thread owns elements
//   i = blockIdx.x·blockDim.x + threadIdx.x + j·gridDim.x·blockDim.x. No shared memory.
#include "common.cuh"

namespace tokens_tile {
constexpr int THREADS = 256;  // threads per block (the launcher uses the same)
}  // namespace tokens_tile

extern "C" __global__ void __launch_bounds__(tokens_tile::THREADS)
copy_rows_f32(const float* __restrict__ src, float* __restrict__ dst, unsigned long long batch,
              unsigned long long len, unsigned long long src_stride,
              unsigned long long src_offset, unsigned long long dst_stride,
              unsigned long long dst_offset) {
  const unsigned long long n = batch * len;
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step) {
    const unsigned long long b = i / len, j = i % len;
    dst[b * dst_stride + dst_offset + j] = src[b * src_stride + src_offset + j];
  }
}
