// CUDA emulator: atomic functions (atomicAdd, atomicMax, atomicCAS, ...) and memory
// fences, through std::atomic_ref with relaxed ordering as on the GPU. Blocks run one at
// a time and threads are cooperative fibers, so these never race on the host; they are
// still real atomics so kernels behave the same if that ever changes. The order in which
// the threads of a launch perform them follows the schedule (ascending or descending), so
// float atomics may round differently under the two orders.
#pragma once

#include <atomic>
#include <cstdint>

#include "emu_half.h"

namespace svlp_emu {
template <typename T>
inline std::atomic_ref<T> atomic_at(T* p) {
  return std::atomic_ref<T>(*p);
}
// Read-modify-write through a compare-exchange loop: stores f(old), returns old.
template <typename T, typename F>
inline T atomic_rmw(T* p, F f) {
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, f(old), std::memory_order_relaxed)) {
  }
  return old;
}
// 16-bit float atomics on the raw bits.
template <typename H, typename F>
inline H atomic_rmw16(H* p, F f) {
  unsigned short* bits = reinterpret_cast<unsigned short*>(p);
  const unsigned short old = atomic_rmw(bits, [&](unsigned short b) {
    return f(half_from_bits<H>(b)).__x;
  });
  return half_from_bits<H>(old);
}
}  // namespace svlp_emu

#define SVLP_EMU_ATOMIC_ADD_SUB(T)                                                     \
  inline T atomicAdd(T* p, T v) {                                                      \
    return svlp_emu::atomic_at(p).fetch_add(v, std::memory_order_relaxed);             \
  }
SVLP_EMU_ATOMIC_ADD_SUB(int)
SVLP_EMU_ATOMIC_ADD_SUB(unsigned int)
SVLP_EMU_ATOMIC_ADD_SUB(unsigned long long)
SVLP_EMU_ATOMIC_ADD_SUB(float)
SVLP_EMU_ATOMIC_ADD_SUB(double)
#undef SVLP_EMU_ATOMIC_ADD_SUB
inline __half atomicAdd(__half* p, __half v) {
  return svlp_emu::atomic_rmw16(p, [&](__half o) { return __float2half(__half2float(o) + __half2float(v)); });
}
inline __nv_bfloat16 atomicAdd(__nv_bfloat16* p, __nv_bfloat16 v) {
  return svlp_emu::atomic_rmw16(p, [&](__nv_bfloat16 o) {
    return __float2bfloat16(__bfloat162float(o) + __bfloat162float(v));
  });
}
inline int atomicSub(int* p, int v) { return svlp_emu::atomic_at(p).fetch_sub(v, std::memory_order_relaxed); }
inline unsigned int atomicSub(unsigned int* p, unsigned int v) {
  return svlp_emu::atomic_at(p).fetch_sub(v, std::memory_order_relaxed);
}

#define SVLP_EMU_ATOMIC_MINMAX(T)                                                        \
  inline T atomicMax(T* p, T v) {                                                        \
    return svlp_emu::atomic_rmw(p, [&](T o) { return o > v ? o : v; });                  \
  }                                                                                      \
  inline T atomicMin(T* p, T v) {                                                        \
    return svlp_emu::atomic_rmw(p, [&](T o) { return o < v ? o : v; });                  \
  }
SVLP_EMU_ATOMIC_MINMAX(int)
SVLP_EMU_ATOMIC_MINMAX(unsigned int)
SVLP_EMU_ATOMIC_MINMAX(long long)
SVLP_EMU_ATOMIC_MINMAX(unsigned long long)
#undef SVLP_EMU_ATOMIC_MINMAX

#define SVLP_EMU_ATOMIC_BITS(T)                                                              \
  inline T atomicAnd(T* p, T v) { return svlp_emu::atomic_at(p).fetch_and(v, std::memory_order_relaxed); } \
  inline T atomicOr(T* p, T v) { return svlp_emu::atomic_at(p).fetch_or(v, std::memory_order_relaxed); }   \
  inline T atomicXor(T* p, T v) { return svlp_emu::atomic_at(p).fetch_xor(v, std::memory_order_relaxed); }
SVLP_EMU_ATOMIC_BITS(int)
SVLP_EMU_ATOMIC_BITS(unsigned int)
SVLP_EMU_ATOMIC_BITS(unsigned long long)
#undef SVLP_EMU_ATOMIC_BITS

#define SVLP_EMU_ATOMIC_EXCH_CAS(T)                                                       \
  inline T atomicExch(T* p, T v) {                                                        \
    return svlp_emu::atomic_at(p).exchange(v, std::memory_order_relaxed);                 \
  }                                                                                       \
  inline T atomicCAS(T* p, T expected, T desired) {                                       \
    svlp_emu::atomic_at(p).compare_exchange_strong(expected, desired,                     \
                                                   std::memory_order_relaxed);            \
    return expected;                                                                      \
  }
SVLP_EMU_ATOMIC_EXCH_CAS(int)
SVLP_EMU_ATOMIC_EXCH_CAS(unsigned int)
SVLP_EMU_ATOMIC_EXCH_CAS(unsigned long long)
SVLP_EMU_ATOMIC_EXCH_CAS(unsigned short)
#undef SVLP_EMU_ATOMIC_EXCH_CAS
inline float atomicExch(float* p, float v) {
  return svlp_emu::atomic_at(p).exchange(v, std::memory_order_relaxed);
}

// atomicInc / atomicDec wrap as on the GPU: ((old >= v) ? 0 : old + 1) and
// ((old == 0 || old > v) ? v : old - 1).
inline unsigned int atomicInc(unsigned int* p, unsigned int v) {
  return svlp_emu::atomic_rmw(p, [&](unsigned int o) { return o >= v ? 0u : o + 1u; });
}
inline unsigned int atomicDec(unsigned int* p, unsigned int v) {
  return svlp_emu::atomic_rmw(p, [&](unsigned int o) { return (o == 0u || o > v) ? v : o - 1u; });
}

// Scoped variants (block / system scope) behave like the device-scope ones here.
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicCAS_block atomicCAS
#define atomicExch_block atomicExch

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
