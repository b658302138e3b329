// Emulator self-test: 16-bit float conversions.
//   emu_selftest_half_convert  per element i: h[i] = __float2half(x[i]) bits,
//                              b[i] = __float2bfloat16(x[i]) bits, and back[2i], back[2i+1]
//                              the floats they convert back to
// Work split: a grid-stride loop, one element per thread per step.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

extern "C" __global__ void emu_selftest_half_convert(const float* __restrict__ x, int n,
                                                     unsigned short* __restrict__ h,
                                                     unsigned short* __restrict__ b,
                                                     float* __restrict__ back) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const __half hv = __float2half(x[i]);
    const __nv_bfloat16 bv = __float2bfloat16(x[i]);
    h[i] = __half_as_ushort(hv);
    b[i] = __bfloat16_as_ushort(bv);
    back[2 * i] = __half2float(hv);
    back[2 * i + 1] = __bfloat162float(bv);
  }
}
