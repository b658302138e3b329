// Emulator self-test: multi-dimensional grids and blocks.
//   emu_selftest_grid_ids  every thread writes its ids into its own record of 12 ints:
//                          threadIdx, blockIdx, blockDim, gridDim (x, y, z each)
// Work split: one record per thread, at the thread's linear id in the whole grid
// (block-major: linear block id · threads per block + linear thread id).
#include "selftest.cuh"

extern "C" __global__ void emu_selftest_grid_ids(int* __restrict__ out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  int* r = out + 12 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
  r[0] = threadIdx.x;
  r[1] = threadIdx.y;
  r[2] = threadIdx.z;
  r[3] = blockIdx.x;
  r[4] = blockIdx.y;
  r[5] = blockIdx.z;
  r[6] = blockDim.x;
  r[7] = blockDim.y;
  r[8] = blockDim.z;
  r[9] = gridDim.x;
  r[10] = gridDim.y;
  r[11] = gridDim.z;
}
