// Embedding lookup (a row gather from a [vocab, dim] table) and its backward (a
// scatter-add of the output gradient into the table gradient), f32, as
// src/ops/embedding.rs. ids are u32 indices, one per output row.
//
// Work split
//   grid ceil(count / ROWS_PER_BLOCK); block THREADS = 256 = 8 warps; a warp owns one
//   output row (one id); lanes stride the dim (float4s when dim % 4 == 0 and the buffers
//   are 16-byte aligned).
//   The backward adds with atomicAdd, so rows with repeated ids accumulate correctly; the
//   order of those additions (and so the last bits of the sum) is not fixed when an id
//   repeats. Unique ids give exact, deterministic results.
//   Ids ≥ vocab are invalid (the launcher's host-side check refuses them when it has the
//   ids): the forward fills such a row with NaN and the backward skips it, so a bad id is
//   visible instead of reading out of bounds.
#include "common.cuh"

namespace embedding_tile {
constexpr int THREADS = 256;                         // threads per block
constexpr int ROWS_PER_BLOCK = THREADS / SVLP_WARP;  // one warp per id
}  // namespace embedding_tile

// out[i, :] = table[ids[i], :] for i < count.
extern "C" __global__ void __launch_bounds__(embedding_tile::THREADS)
embedding_forward_f32(const float* __restrict__ table, const unsigned* __restrict__ ids,
                      float* __restrict__ out, int count, int dim, int vocab) {
  using namespace embedding_tile;
  const int pos = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / SVLP_WARP;
  const int lane = threadIdx.x % SVLP_WARP;
  if (pos >= count) return;
  const unsigned id = ids[pos];
  float* dst = out + (size_t)pos * dim;
  if (id >= (unsigned)vocab) {
    for (int c = lane; c < dim; c += SVLP_WARP) dst[c] = NAN;
    return;
  }
  const float* src = table + (size_t)id * dim;
  if (dim % 4 == 0 && svlp_aligned16(table) && svlp_aligned16(out)) {
    for (int c = lane * 4; c < dim; c += SVLP_WARP * 4) {
      *reinterpret_cast<float4*>(dst + c) = *reinterpret_cast<const float4*>(src + c);
    }
  } else {
    for (int c = lane; c < dim; c += SVLP_WARP) dst[c] = src[c];
  }
}

// dtable[ids[i], :] += dy[i, :] for i < count (atomic adds).
extern "C" __global__ void __launch_bounds__(embedding_tile::THREADS)
embedding_backward_f32(const unsigned* __restrict__ ids, const float* __restrict__ dy,
                       float* __restrict__ dtable, int count, int dim, int vocab) {
  using namespace embedding_tile;
  const int pos = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / SVLP_WARP;
  const int lane = threadIdx.x % SVLP_WARP;
  if (pos >= count) return;
  const unsigned id = ids[pos];
  if (id >= (unsigned)vocab) return;
  const float* src = dy + (size_t)pos * dim;
  float* dst = dtable + (size_t)id * dim;
  for (int c = lane; c < dim; c += SVLP_WARP) atomicAdd(dst + c, src[c]);
}
