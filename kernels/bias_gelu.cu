// Bias add, fused bias + GELU (exact erf form) forward and backward, and the deterministic
// column reduction that produces bias gradients. f32, row-major [rows, n] activations with
// a bias [n] added to every row (as src/ops/elementwise.rs).
//
// Work split
//   Element-wise kernels (bias_add_f32, bias_gelu_forward_f32, gelu_forward_f32,
//   gelu_backward_f32): grid-stride loops over rows·n elements; a thread owns 4
//   consecutive elements per step (one float4 when n % 4 == 0 and the buffers are 16-byte
//   aligned, else 4 scalars). Launch with EW_THREADS threads and any grid.
//
//   Column reduction, two passes, deterministic (no atomics; the same bits on every run and
//   every device schedule):
//   pass 1 (column_sum_partial_f32, bias_gelu_backward_f32):
//     grid  (ceil(n / COLS), chunks); block (COLS, ROW_THREADS) = (32, 8) threads.
//     block (x, y) owns columns x·32 .. +31 of rows y·rows_per_chunk .. +rows_per_chunk;
//     thread (tx, ty) sums column x·32 + tx over the rows ty, ty + 8, … of that chunk (a warp
//     reads 32 consecutive floats of one row), then the 8 partial sums of a column are
//     added in ty order through shared memory, and the block writes
//     partial[y, column] (partial is [chunks, n]).
//   pass 2 (column_sum_finish_f32): grid-stride over columns; a thread adds the chunk
//     partials of one column in chunk order and writes (or adds to) out[column].
#include "common.cuh"

namespace bias_gelu_tile {
constexpr int EW_THREADS = 256;  // threads per block of the element-wise kernels
constexpr int COLS = SVLP_COLSUM_COLS;                // columns per column-reduction block
constexpr int ROW_THREADS = SVLP_COLSUM_ROW_THREADS;  // threads down its rows
}  // namespace bias_gelu_tile

// Applies f(x, bias, i) to the 4 elements at flat index i.. (row-major [rows, n]); F writes.
// Returns through the functor; shared by the element-wise kernels.
template <typename F>
static __device__ __forceinline__ void svlp_rowwise4(int rows, int n, bool vec, F f) {
  const size_t total = (size_t)rows * n;
  const size_t step = (size_t)gridDim.x * blockDim.x * 4;
  for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 4; i < total; i += step) {
    if (vec) {
      f(i, (int)(i % n), true);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if (i + j < total) f(i + j, (int)((i + j) % n), false);
      }
    }
  }
}

// y = x + bias (row-wise); y may alias x.
extern "C" __global__ void __launch_bounds__(bias_gelu_tile::EW_THREADS)
bias_add_f32(const float* x, const float* __restrict__ bias, float* y, int rows, int n) {
  const bool vec = n % 4 == 0 && svlp_aligned16(x) && svlp_aligned16(y) && svlp_aligned16(bias);
  svlp_rowwise4(rows, n, vec, [&](size_t i, int c, bool v4) {
    if (v4) {
      const float4 a = *reinterpret_cast<const float4*>(x + i);
      const float4 b = *reinterpret_cast<const float4*>(bias + c);
      *reinterpret_cast<float4*>(y + i) = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    } else {
      y[i] = x[i] + bias[c];
    }
  });
}

// h = x + bias (saved for the backward), y = GELU(h).
extern "C" __global__ void __launch_bounds__(bias_gelu_tile::EW_THREADS)
bias_gelu_forward_f32(const float* __restrict__ x, const float* __restrict__ bias,
                      float* __restrict__ h, float* __restrict__ y, int rows, int n) {
  const bool vec = n % 4 == 0 && svlp_aligned16(x) && svlp_aligned16(y) &&
                   svlp_aligned16(h) && svlp_aligned16(bias);
  svlp_rowwise4(rows, n, vec, [&](size_t i, int c, bool v4) {
    if (v4) {
      const float4 a = *reinterpret_cast<const float4*>(x + i);
      const float4 b = *reinterpret_cast<const float4*>(bias + c);
      const float4 s = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
      *reinterpret_cast<float4*>(h + i) = s;
      *reinterpret_cast<float4*>(y + i) =
          make_float4(svlp_gelu(s.x), svlp_gelu(s.y), svlp_gelu(s.z), svlp_gelu(s.w));
    } else {
      const float s = x[i] + bias[c];
      h[i] = s;
      y[i] = svlp_gelu(s);
    }
  });
}

// y = GELU(x) over `count` elements; y may alias x.
extern "C" __global__ void __launch_bounds__(bias_gelu_tile::EW_THREADS)
gelu_forward_f32(const float* x, float* y, int count) {
  const bool vec = svlp_aligned16(x) && svlp_aligned16(y);
  svlp_rowwise4(1, count, vec && count % 4 == 0, [&](size_t i, int, bool v4) {
    if (v4) {
      const float4 a = *reinterpret_cast<const float4*>(x + i);
      *reinterpret_cast<float4*>(y + i) =
          make_float4(svlp_gelu(a.x), svlp_gelu(a.y), svlp_gelu(a.z), svlp_gelu(a.w));
    } else {
      y[i] = svlp_gelu(x[i]);
    }
  });
}

// dx = dy · GELU'(x) over `count` elements; dx may alias dy.
extern "C" __global__ void __launch_bounds__(bias_gelu_tile::EW_THREADS)
gelu_backward_f32(const float* __restrict__ x, const float* dy, float* dx, int count) {
  const bool vec = svlp_aligned16(x) && svlp_aligned16(dy) && svlp_aligned16(dx);
  svlp_rowwise4(1, count, vec && count % 4 == 0, [&](size_t i, int, bool v4) {
    if (v4) {
      const float4 a = *reinterpret_cast<const float4*>(x + i);
      const float4 g = *reinterpret_cast<const float4*>(dy + i);
      *reinterpret_cast<float4*>(dx + i) =
          make_float4(svlp_gelu_grad(a.x, g.x), svlp_gelu_grad(a.y, g.y),
                      svlp_gelu_grad(a.z, g.z), svlp_gelu_grad(a.w, g.w));
    } else {
      dx[i] = svlp_gelu_grad(x[i], dy[i]);
    }
  });
}

// Pass 1 of a column sum of x [rows, n]: partial[chunk, col] = Σ over the chunk's rows.
extern "C" __global__ void __launch_bounds__(bias_gelu_tile::COLS * bias_gelu_tile::ROW_THREADS)
column_sum_partial_f32(const float* __restrict__ x, float* __restrict__ partial, int rows, int n,
                       int rows_per_chunk) {
  float* const out[1] = {partial};
  svlp_column_partial<1>(out, n, rows, n, rows_per_chunk,
                         [&](int r, int c, float* v) { v[0] = x[(size_t)r * n + c]; });
}

// Backward of bias_gelu_forward_f32: dh = dy · GELU'(h) (written to dh, which may alias
// dy), and pass 1 of the bias gradient: partial[chunk, col] = Σ over the chunk of dh.
extern "C" __global__ void __launch_bounds__(bias_gelu_tile::COLS * bias_gelu_tile::ROW_THREADS)
bias_gelu_backward_f32(const float* __restrict__ h, const float* dy, float* dh,
                       float* __restrict__ partial, int rows, int n, int rows_per_chunk) {
  float* const out[1] = {partial};
  svlp_column_partial<1>(out, n, rows, n, rows_per_chunk, [&](int r, int c, float* v) {
    const size_t i = (size_t)r * n + c;
    const float g = svlp_gelu_grad(h[i], dy[i]);
    dh[i] = g;
    v[0] = g;
  });
}

// Pass 2 of a column sum: out[col] (+)= Σ_chunk partial[chunk · ld + col], chunks in order.
extern "C" __global__ void __launch_bounds__(bias_gelu_tile::EW_THREADS)
column_sum_finish_f32(const float* __restrict__ partial, int ld, float* __restrict__ out,
                      int chunks, int n, int accumulate) {
  for (int col = blockIdx.x * blockDim.x + threadIdx.x; col < n; col += gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int k = 0; k < chunks; ++k) s += partial[(size_t)k * ld + col];
    out[col] = accumulate ? out[col] + s : s;
  }
}
