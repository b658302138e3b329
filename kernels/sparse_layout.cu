// Layout and precision conversions feeding the sparse kernels: a tiled f32 transpose (the
// CSR kernels want tokens contiguous: Xᵀ, dYᵀ, and Yᵀ back to Y), f32 → bf16 rounding
// (the tensor-core kernels take bf16 activations) and the gather of a dense 2:4 weight
// gradient into the matrix's slot order.
//
// Work split
//   transpose_f32: grid (ceil(cols / TILE), ceil(rows / TILE)); a block of TILE × ROWS_PER
//     threads moves one TILE×TILE tile through shared memory (rows padded by one float
//     against bank conflicts): coalesced reads of `in` rows, coalesced writes of `out`
//     rows; each thread moves TILE / ROWS_PER elements each way.
//   cast_f32_bf16, nm24_gather_f32: grid-stride loops, THREADS threads per block, one
//     element per thread per step.
#include "common.cuh"

namespace sparse_layout_tile {
constexpr int TILE = 32;      // transpose tile side
constexpr int ROWS_PER = 8;   // thread rows of a transpose block (blockDim = (32, 8))
constexpr int THREADS = 256;  // threads per block of the element-wise kernels
}  // namespace sparse_layout_tile

// out [cols, rows] (ld_out) = in [rows, cols] (ld_in) transposed.
extern "C" __global__ void __launch_bounds__(sparse_layout_tile::TILE * sparse_layout_tile::ROWS_PER)
transpose_f32(const float* __restrict__ in, int rows, int cols, int ld_in,
    float* __restrict__ out, int ld_out) {
  using namespace sparse_layout_tile;
  __shared__ float tile[TILE][TILE + 1];
  const int c0 = blockIdx.x * TILE, r0 = blockIdx.y * TILE;
  for (int i = threadIdx.y; i < TILE; i += ROWS_PER) {
    const int r = r0 + i, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[i][threadIdx.x] = in[(size_t)r * ld_in + c];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < TILE; i += ROWS_PER) {
    const int c = c0 + i, r = r0 + threadIdx.x;
    if (r < rows && c < cols) out[(size_t)c * ld_out + r] = tile[threadIdx.x][i];
  }
}

// out[i] = bf16(in[i]) (round to nearest even) for i < n.
extern "C" __global__ void __launch_bounds__(sparse_layout_tile::THREADS)
cast_f32_bf16(const float* __restrict__ in, __nv_bfloat16* __restrict__ out,
    unsigned long long n) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += step)
    out[i] = __float2bfloat16(in[i]);
}

// 2:4 slot gather: slot s of row r = s / slots_per_row sits in group g = (s % slots_per_row)
// / 2 at column 4·g + index[s]; out[s] = dense[r, column] (0 for a padded column).
extern "C" __global__ void __launch_bounds__(sparse_layout_tile::THREADS)
nm24_gather_f32(const float* __restrict__ dense, int cols,
    const unsigned char* __restrict__ index, unsigned long long slots, int slots_per_row,
    float* __restrict__ out) {
  const unsigned long long step = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long s = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
       s < slots; s += step) {
    const unsigned long long r = s / slots_per_row;
    const int col = (int)(s % slots_per_row) / 2 * 4 + index[s];
    out[s] = col < cols ? dense[r * cols + col] : 0.f;
  }
}
