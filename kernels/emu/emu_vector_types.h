// CUDA emulator: the built-in vector types (uint3, dim3, float2, float4, int4, ...) and
// their make_* constructors, laid out and aligned as in CUDA's vector_types.h (16-byte
// float4/int4/uint4, 8-byte float2/int2, ...) so reinterpret_casts in kernels keep
// working on the host.
#pragma once

#include <cstdint>

#define SVLP_EMU_VEC2(T, NAME, ALIGN)                                                 \
  struct alignas(ALIGN) NAME {                                                        \
    T x, y;                                                                           \
  };                                                                                  \
  static inline NAME make_##NAME(T x, T y) { return NAME{x, y}; }
#define SVLP_EMU_VEC3(T, NAME)                                                        \
  struct NAME {                                                                       \
    T x, y, z;                                                                        \
  };                                                                                  \
  static inline NAME make_##NAME(T x, T y, T z) { return NAME{x, y, z}; }
#define SVLP_EMU_VEC4(T, NAME, ALIGN)                                                 \
  struct alignas(ALIGN) NAME {                                                        \
    T x, y, z, w;                                                                     \
  };                                                                                  \
  static inline NAME make_##NAME(T x, T y, T z, T w) { return NAME{x, y, z, w}; }
#define SVLP_EMU_VEC1(T, NAME, ALIGN)                                                 \
  struct alignas(ALIGN) NAME {                                                        \
    T x;                                                                              \
  };                                                                                  \
  static inline NAME make_##NAME(T x) { return NAME{x}; }

SVLP_EMU_VEC1(signed char, char1, 1)
SVLP_EMU_VEC2(signed char, char2, 2)
SVLP_EMU_VEC3(signed char, char3)
SVLP_EMU_VEC4(signed char, char4, 4)
SVLP_EMU_VEC1(unsigned char, uchar1, 1)
SVLP_EMU_VEC2(unsigned char, uchar2, 2)
SVLP_EMU_VEC3(unsigned char, uchar3)
SVLP_EMU_VEC4(unsigned char, uchar4, 4)
SVLP_EMU_VEC1(short, short1, 2)
SVLP_EMU_VEC2(short, short2, 4)
SVLP_EMU_VEC3(short, short3)
SVLP_EMU_VEC4(short, short4, 8)
SVLP_EMU_VEC1(unsigned short, ushort1, 2)
SVLP_EMU_VEC2(unsigned short, ushort2, 4)
SVLP_EMU_VEC3(unsigned short, ushort3)
SVLP_EMU_VEC4(unsigned short, ushort4, 8)
SVLP_EMU_VEC1(int, int1, 4)
SVLP_EMU_VEC2(int, int2, 8)
SVLP_EMU_VEC3(int, int3)
SVLP_EMU_VEC4(int, int4, 16)
SVLP_EMU_VEC1(unsigned int, uint1, 4)
SVLP_EMU_VEC2(unsigned int, uint2, 8)
SVLP_EMU_VEC3(unsigned int, uint3)
SVLP_EMU_VEC4(unsigned int, uint4, 16)
SVLP_EMU_VEC1(long long, longlong1, 8)
SVLP_EMU_VEC2(long long, longlong2, 16)
SVLP_EMU_VEC1(unsigned long long, ulonglong1, 8)
SVLP_EMU_VEC2(unsigned long long, ulonglong2, 16)
SVLP_EMU_VEC1(float, float1, 4)
SVLP_EMU_VEC2(float, float2, 8)
SVLP_EMU_VEC3(float, float3)
SVLP_EMU_VEC4(float, float4, 16)
SVLP_EMU_VEC1(double, double1, 8)
SVLP_EMU_VEC2(double, double2, 16)

#undef SVLP_EMU_VEC1
#undef SVLP_EMU_VEC2
#undef SVLP_EMU_VEC3
#undef SVLP_EMU_VEC4

// Launch dimensions: like uint3, but every component defaults to 1.
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

static_assert(sizeof(float4) == 16 && alignof(float4) == 16, "float4 layout as in CUDA");
static_assert(sizeof(uint4) == 16 && alignof(uint4) == 16, "uint4 layout as in CUDA");
static_assert(sizeof(float2) == 8 && alignof(float2) == 8, "float2 layout as in CUDA");
static_assert(sizeof(float3) == 12 && alignof(float3) == 4, "float3 layout as in CUDA");
