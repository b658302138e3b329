// CUDA emulator: the 16-bit float types __half and __nv_bfloat16 (2-byte structs holding
// the raw bits, with half2/bfloat162 pairs) and the conversion and arithmetic intrinsics
// of cuda_fp16.h / cuda_bf16.h. Conversions from float round to nearest even (F16C
// instructions when compiled with -mf16c, an exact software path otherwise); NaN stays
// NaN (quiet, payload kept where it fits). Arithmetic is done in f32 and rounded once to
// the 16-bit type.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "emu_vector_types.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace svlp_emu {

// float -> IEEE binary16 bits, round to nearest even.
inline unsigned short f32_to_f16_bits(float f) {
#if defined(__F16C__)
  return static_cast<unsigned short>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
#else
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  std::uint32_t a = u & 0x7fffffffu;
  if (a >= 0x47800000u) {  // |f| >= 65536: Inf, NaN or overflow
    if (a > 0x7f800000u) return static_cast<unsigned short>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    return static_cast<unsigned short>(sign | 0x7c00u);
  }
  if (a < 0x38800000u) {  // result is subnormal or zero: let the FPU round f + 0.5
    const float magic = std::bit_cast<float>(0x3f000000u);  // 2^-1: ulp becomes 2^-24
    const float r = std::bit_cast<float>(a) + magic;
    return static_cast<unsigned short>(sign | (std::bit_cast<std::uint32_t>(r) - 0x3f000000u));
  }
  const std::uint32_t odd = (a >> 13) & 1u;
  a += 0xc8000fffu + odd;  // rebias exponent (-112 << 23) and round to nearest even
  return static_cast<unsigned short>(sign | (a >> 13));
#endif
}

// IEEE binary16 bits -> float (exact).
inline float f16_bits_to_f32(unsigned short h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t man = h & 0x3ffu;
  if (exp == 0x1fu)  // Inf, or NaN made quiet as the hardware does
    return std::bit_cast<float>(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u));
  if (exp == 0) {  // zero or subnormal: man · 2^-24
    const float v = static_cast<float>(man) * std::bit_cast<float>(0x33800000u);
    return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(v));
  }
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

// float -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN.
inline unsigned short f32_to_bf16_bits(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<unsigned short>((u >> 16) | 0x40u);
  return static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float bf16_bits_to_f32(unsigned short b) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
}

}  // namespace svlp_emu

// ---- the types ----------------------------------------------------------------------------
struct __half_raw {
  unsigned short x;
};
struct __nv_bfloat16_raw {
  unsigned short x;
};

// Defines a 16-bit float type NAME with the conversions CUDA gives it (from and to float
// and the integer types, from its raw struct).
#define SVLP_EMU_HALF_TYPE(NAME, RAW, TO_BITS, FROM_BITS)                                     \
  struct alignas(2) NAME {                                                                    \
    unsigned short __x;                                                                       \
    NAME() = default;                                                                         \
    constexpr NAME(const RAW& r) : __x(r.x) {}                                                \
    NAME(float f) : __x(TO_BITS(f)) {}                                                        \
    NAME(double f) : __x(TO_BITS(static_cast<float>(f))) {}                                   \
    NAME(int v) : __x(TO_BITS(static_cast<float>(v))) {}                                      \
    NAME(unsigned int v) : __x(TO_BITS(static_cast<float>(v))) {}                             \
    NAME(short v) : __x(TO_BITS(static_cast<float>(v))) {}                                    \
    NAME(unsigned short v) : __x(TO_BITS(static_cast<float>(v))) {}                           \
    NAME(long long v) : __x(TO_BITS(static_cast<float>(v))) {}                                \
    NAME(unsigned long long v) : __x(TO_BITS(static_cast<float>(v))) {}                       \
    operator float() const { return FROM_BITS(__x); }                                         \
    constexpr operator RAW() const { return RAW{__x}; }                                       \
    NAME& operator=(const RAW& r) {                                                           \
      __x = r.x;                                                                              \
      return *this;                                                                           \
    }                                                                                         \
  };
SVLP_EMU_HALF_TYPE(__half, __half_raw, svlp_emu::f32_to_f16_bits, svlp_emu::f16_bits_to_f32)
SVLP_EMU_HALF_TYPE(__nv_bfloat16, __nv_bfloat16_raw, svlp_emu::f32_to_bf16_bits,
                   svlp_emu::bf16_bits_to_f32)
#undef SVLP_EMU_HALF_TYPE

struct alignas(4) __half2 {
  __half x, y;
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
using half = __half;
using half2 = __half2;
using nv_bfloat16 = __nv_bfloat16;
using nv_bfloat162 = __nv_bfloat162;

static_assert(sizeof(__half) == 2 && std::is_trivially_copyable_v<__half> &&
                  std::is_trivially_default_constructible_v<__half>,
              "__half is a 2-byte trivial type as in CUDA");
static_assert(sizeof(__nv_bfloat16) == 2 && std::is_trivially_copyable_v<__nv_bfloat16>,
              "__nv_bfloat16 is a 2-byte trivial type as in CUDA");
static_assert(sizeof(__half2) == 4 && sizeof(__nv_bfloat162) == 4, "pairs are 4 bytes");

namespace svlp_emu {
template <typename H>
inline H half_from_bits(unsigned short b) {
  H h;
  h.__x = b;
  return h;
}
}  // namespace svlp_emu

// ---- conversions --------------------------------------------------------------------------
inline __half __float2half(float f) { return svlp_emu::half_from_bits<__half>(svlp_emu::f32_to_f16_bits(f)); }
inline __half __float2half_rn(float f) { return __float2half(f); }
inline __half __double2half(double d) { return __float2half(static_cast<float>(d)); }
inline float __half2float(__half h) { return svlp_emu::f16_bits_to_f32(h.__x); }
inline __nv_bfloat16 __float2bfloat16(float f) {
  return svlp_emu::half_from_bits<__nv_bfloat16>(svlp_emu::f32_to_bf16_bits(f));
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
  return svlp_emu::half_from_bits<__nv_bfloat16>(
      static_cast<unsigned short>(std::bit_cast<std::uint32_t>(f) >> 16));
}
inline __nv_bfloat16 __double2bfloat16(double d) { return __float2bfloat16(static_cast<float>(d)); }
inline float __bfloat162float(__nv_bfloat16 b) { return svlp_emu::bf16_bits_to_f32(b.__x); }

inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline short __half_as_short(__half h) { return static_cast<short>(h.__x); }
inline __half __ushort_as_half(unsigned short b) { return svlp_emu::half_from_bits<__half>(b); }
inline __half __short_as_half(short b) { return svlp_emu::half_from_bits<__half>(static_cast<unsigned short>(b)); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline short __bfloat16_as_short(__nv_bfloat16 h) { return static_cast<short>(h.__x); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short b) {
  return svlp_emu::half_from_bits<__nv_bfloat16>(b);
}
inline __nv_bfloat16 __short_as_bfloat16(short b) {
  return svlp_emu::half_from_bits<__nv_bfloat16>(static_cast<unsigned short>(b));
}
inline __half __int2half_rn(int v) { return __float2half(static_cast<float>(v)); }
inline int __half2int_rz(__half h) { return static_cast<int>(__half2float(h)); }
inline __nv_bfloat16 __int2bfloat16_rn(int v) { return __float2bfloat16(static_cast<float>(v)); }
inline int __bfloat162int_rz(__nv_bfloat16 h) { return static_cast<int>(__bfloat162float(h)); }

// Pairs.
inline __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half(a), __float2half(b)}; }
inline __half2 __float2half2_rn(float a) { return __half2{__float2half(a), __float2half(a)}; }
inline __half2 __half2half2(__half a) { return __half2{a, a}; }
inline __half __low2half(__half2 v) { return v.x; }
inline __half __high2half(__half2 v) { return v.y; }
inline float __low2float(__half2 v) { return __half2float(v.x); }
inline float __high2float(__half2 v) { return __half2float(v.y); }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162{a, b}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162{__float2bfloat16(a), __float2bfloat16(b)};
}
inline __nv_bfloat162 __float2bfloat162_rn(float a) {
  return __nv_bfloat162{__float2bfloat16(a), __float2bfloat16(a)};
}
inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 a) { return __nv_bfloat162{a, a}; }
inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 v) { return v.x; }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 v) { return v.y; }
inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }

// ---- arithmetic and comparison (through f32, one rounding to the 16-bit type) ---------------
#define SVLP_EMU_HALF_OPS(H, H2, TO, FROM)                                                     \
  inline H __hadd(H a, H b) { return TO(FROM(a) + FROM(b)); }                                  \
  inline H __hsub(H a, H b) { return TO(FROM(a) - FROM(b)); }                                  \
  inline H __hmul(H a, H b) { return TO(FROM(a) * FROM(b)); }                                  \
  inline H __hdiv(H a, H b) { return TO(FROM(a) / FROM(b)); }                                  \
  inline H __hfma(H a, H b, H c) { return TO(std::fma(FROM(a), FROM(b), FROM(c))); }           \
  inline H __hneg(H a) { return svlp_emu::half_from_bits<H>(static_cast<unsigned short>(a.__x ^ 0x8000u)); } \
  inline H __habs(H a) { return svlp_emu::half_from_bits<H>(static_cast<unsigned short>(a.__x & 0x7fffu)); } \
  inline H __hmax(H a, H b) { return TO(std::fmax(FROM(a), FROM(b))); }                        \
  inline H __hmin(H a, H b) { return TO(std::fmin(FROM(a), FROM(b))); }                        \
  inline bool __heq(H a, H b) { return FROM(a) == FROM(b); }                                   \
  inline bool __hne(H a, H b) { return FROM(a) != FROM(b); }                                   \
  inline bool __hlt(H a, H b) { return FROM(a) < FROM(b); }                                    \
  inline bool __hle(H a, H b) { return FROM(a) <= FROM(b); }                                   \
  inline bool __hgt(H a, H b) { return FROM(a) > FROM(b); }                                    \
  inline bool __hge(H a, H b) { return FROM(a) >= FROM(b); }                                   \
  inline bool __hisnan(H a) { return FROM(a) != FROM(a); }                                     \
  inline int __hisinf(H a) {                                                                   \
    const float f = FROM(a);                                                                   \
    return f == INFINITY ? 1 : (f == -INFINITY ? -1 : 0);                                      \
  }                                                                                            \
  inline H2 __hadd2(H2 a, H2 b) { return H2{__hadd(a.x, b.x), __hadd(a.y, b.y)}; }             \
  inline H2 __hsub2(H2 a, H2 b) { return H2{__hsub(a.x, b.x), __hsub(a.y, b.y)}; }             \
  inline H2 __hmul2(H2 a, H2 b) { return H2{__hmul(a.x, b.x), __hmul(a.y, b.y)}; }             \
  inline H2 __hfma2(H2 a, H2 b, H2 c) { return H2{__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)}; } \
  inline H2 __hneg2(H2 a) { return H2{__hneg(a.x), __hneg(a.y)}; }                             \
  inline H operator+(H a, H b) { return __hadd(a, b); }                                        \
  inline H operator-(H a, H b) { return __hsub(a, b); }                                        \
  inline H operator*(H a, H b) { return __hmul(a, b); }                                        \
  inline H operator/(H a, H b) { return __hdiv(a, b); }                                        \
  inline H operator-(H a) { return __hneg(a); }                                                \
  inline H& operator+=(H& a, H b) { return a = __hadd(a, b); }                                 \
  inline H& operator-=(H& a, H b) { return a = __hsub(a, b); }                                 \
  inline H& operator*=(H& a, H b) { return a = __hmul(a, b); }                                 \
  inline H& operator/=(H& a, H b) { return a = __hdiv(a, b); }                                 \
  inline bool operator==(H a, H b) { return __heq(a, b); }                                     \
  inline bool operator!=(H a, H b) { return __hne(a, b); }                                     \
  inline bool operator<(H a, H b) { return __hlt(a, b); }                                      \
  inline bool operator<=(H a, H b) { return __hle(a, b); }                                     \
  inline bool operator>(H a, H b) { return __hgt(a, b); }                                      \
  inline bool operator>=(H a, H b) { return __hge(a, b); }
SVLP_EMU_HALF_OPS(__half, __half2, __float2half, __half2float)
SVLP_EMU_HALF_OPS(__nv_bfloat16, __nv_bfloat162, __float2bfloat16, __bfloat162float)
#undef SVLP_EMU_HALF_OPS

inline float2 __half22float2(__half2 v) { return float2{__half2float(v.x), __half2float(v.y)}; }
inline __half2 __float22half2_rn(float2 v) { return __floats2half2_rn(v.x, v.y); }
inline float2 __bfloat1622float2(__nv_bfloat162 v) {
  return float2{__bfloat162float(v.x), __bfloat162float(v.y)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return __floats2bfloat162_rn(v.x, v.y); }
