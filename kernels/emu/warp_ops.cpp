// CUDA emulator: the warp collectives behind the shim's intrinsics — shuffles with PTX
// shfl.sync semantics (including `width` segments and out-of-range sources, which read
// the lane's own value), votes, integer reductions, __match_any_sync and __syncwarp. Each
// is a WarpCombine run once all participating lanes have arrived (scheduler.cpp).
#include <bit>
#include <cstdio>

#include "emu_runtime.h"

namespace svlp_emu {
namespace {

struct ShflLane {
  std::uint64_t value;
  std::uint64_t result;
  ShflMode mode;
  int arg;
  int width;
};

// Source lane of `lane` for shfl.sync with clamp/segment operand c = ((32 - width) << 8)
// | clamp, as the PTX ISA defines it (a source outside the segment reads `lane` itself).
unsigned shfl_source(unsigned lane, ShflMode mode, int arg, int width) {
  const unsigned segmask = static_cast<unsigned>(32 - width) & 31u;
  const unsigned clamp = mode == ShflMode::Up ? 0u : 31u;
  const unsigned b = static_cast<unsigned>(arg) & 31u;
  const unsigned max_lane = (lane & segmask) | (clamp & ~segmask);
  const unsigned min_lane = lane & segmask;
  int j = 0;
  bool ok = false;
  switch (mode) {
    case ShflMode::Up:
      j = static_cast<int>(lane) - static_cast<int>(b);
      ok = j >= static_cast<int>(max_lane);
      break;
    case ShflMode::Down:
      j = static_cast<int>(lane + b);
      ok = j <= static_cast<int>(max_lane);
      break;
    case ShflMode::Bfly:
      j = static_cast<int>(lane ^ b);
      ok = j <= static_cast<int>(max_lane);
      break;
    case ShflMode::Idx:
      j = static_cast<int>(min_lane | (b & ~segmask));
      ok = j <= static_cast<int>(max_lane);
      break;
  }
  return ok ? static_cast<unsigned>(j) : lane;
}

bool shfl_combine(void* const* lanes, unsigned participants, char*, std::size_t) {
  for (unsigned m = participants; m; m &= m - 1) {
    const unsigned l = static_cast<unsigned>(std::countr_zero(m));
    auto* d = static_cast<ShflLane*>(lanes[l]);
    const unsigned src = shfl_source(l, d->mode, d->arg, d->width);
    // A source lane that does not take part (exited, or not in the mask) is undefined
    // in CUDA; here it reads the lane's own value.
    const auto* s = ((participants >> src) & 1u) ? static_cast<ShflLane*>(lanes[src]) : d;
    d->result = s->value;
  }
  return true;
}

struct ReduceLane {
  std::uint64_t value;
  std::uint64_t result;
  WarpReduce op;
};

bool reduce_combine(void* const* lanes, unsigned participants, char*, std::size_t) {
  const int first = std::countr_zero(participants);
  const WarpReduce op = static_cast<ReduceLane*>(lanes[first])->op;
  std::uint64_t acc = 0;
  std::int32_t smin = INT32_MAX, smax = INT32_MIN;
  std::uint32_t umin = UINT32_MAX, umax = 0, band = UINT32_MAX, bor = 0, bxor = 0, sum = 0;
  unsigned ballot = 0;
  for (unsigned m = participants; m; m &= m - 1) {
    const unsigned l = static_cast<unsigned>(std::countr_zero(m));
    const std::uint64_t v = static_cast<ReduceLane*>(lanes[l])->value;
    const auto v32 = static_cast<std::uint32_t>(v);
    const auto s32 = static_cast<std::int32_t>(v32);
    if (v) ballot |= 1u << l;
    sum += v32;
    smin = s32 < smin ? s32 : smin;
    smax = s32 > smax ? s32 : smax;
    umin = v32 < umin ? v32 : umin;
    umax = v32 > umax ? v32 : umax;
    band &= v32;
    bor |= v32;
    bxor ^= v32;
  }
  switch (op) {
    case WarpReduce::Ballot: acc = ballot; break;
    case WarpReduce::Any: acc = ballot != 0; break;
    case WarpReduce::All: acc = ballot == participants; break;
    case WarpReduce::Add: acc = sum; break;
    case WarpReduce::Min: acc = static_cast<std::uint32_t>(smin); break;
    case WarpReduce::Max: acc = static_cast<std::uint32_t>(smax); break;
    case WarpReduce::UMin: acc = umin; break;
    case WarpReduce::UMax: acc = umax; break;
    case WarpReduce::And: acc = band; break;
    case WarpReduce::Or: acc = bor; break;
    case WarpReduce::Xor: acc = bxor; break;
    case WarpReduce::MatchAny: break;
  }
  for (unsigned m = participants; m; m &= m - 1) {
    const unsigned l = static_cast<unsigned>(std::countr_zero(m));
    auto* d = static_cast<ReduceLane*>(lanes[l]);
    if (op != WarpReduce::MatchAny) {
      d->result = acc;
      continue;
    }
    unsigned same = 0;
    for (unsigned k = participants; k; k &= k - 1) {
      const unsigned o = static_cast<unsigned>(std::countr_zero(k));
      if (static_cast<ReduceLane*>(lanes[o])->value == d->value) same |= 1u << o;
    }
    d->result = same;
  }
  return true;
}

bool sync_combine(void* const*, unsigned, char*, std::size_t) { return true; }

}  // namespace

std::uint64_t warp_shuffle(const Site& site, unsigned mask, std::uint64_t value, ShflMode mode,
                           int arg, int width) {
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    fail("%s at %s:%u: width %d is not a power of two in 1..32", site.what,
         short_path(site.loc.file_name()), static_cast<unsigned>(site.loc.line()), width);
  ShflLane d{value, 0, mode, arg, width};
  warp_collective(site, mask, &shfl_combine, &d);
  return d.result;
}

std::uint64_t warp_reduce(const Site& site, unsigned mask, WarpReduce op, std::uint64_t value) {
  ReduceLane d{value, 0, op};
  warp_collective(site, mask, &reduce_combine, &d);
  return d.result;
}

void warp_sync(const Site& site, unsigned mask) {
  int dummy = 0;
  warp_collective(site, mask, &sync_combine, &dummy);
}

}  // namespace svlp_emu
