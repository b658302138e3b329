// CUDA emulator: the block scheduler (see scheduler.h) and the yield points kernels reach
// through the shim: block_barrier, warp_collective, yield_thread, fail.
#include "scheduler.h"

#include <algorithm>
#include <bit>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "include/assert.h"
#include "fiber_context.h"
#include "fiber_stack.h"

namespace svlp_emu {

uint3 g_thread_idx;
uint3 g_block_idx;
dim3 g_block_dim;
dim3 g_grid_dim;
unsigned g_linear_tid;

namespace {

enum class State : unsigned char { Ready, Barrier, Warp, Exited };

struct Fiber {
  FiberContext ctx;
  State state = State::Ready;
  unsigned linear = 0;
  uint3 tid{};
  Site site{};  // where it waits (Barrier, Warp)
  // __syncthreads*
  BarrierKind bar_kind = BarrierKind::Plain;
  int bar_pred = 0;
  int bar_result = 0;
  // warp collective
  unsigned mask = 0;
  WarpCombine combine = nullptr;
  void* lane_data = nullptr;
};

// Rounds in a row in which threads only yielded (__nanosleep) before the block is
// declared stuck in a spin-wait.
constexpr unsigned kMaxIdleRounds = 1u << 22;

// The running block (one at a time in the process: launch.cpp holds the launch lock).
struct Block {
  const BlockLaunch* launch = nullptr;
  std::vector<Fiber> fibers;
  unsigned n = 0;
  FiberContext scheduler;
  Fiber* current = nullptr;
  unsigned n_ready = 0, n_barrier = 0, n_warp = 0, n_exited = 0;
  std::vector<unsigned> warp_waiting;  // lanes of each warp waiting in a collective
  bool events = false;                 // a thread blocked or exited this round
  bool failed = false;
  std::string fail_msg;
};

Block g_run;
StackPool* g_stacks = nullptr;

void format_site(char* out, std::size_t len, const Site& s) {
  std::snprintf(out, len, "%s at %s:%u:%u", s.what, short_path(s.loc.file_name()),
                static_cast<unsigned>(s.loc.line()), static_cast<unsigned>(s.loc.column()));
}

std::string describe(const Fiber& f) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "thread (%u,%u,%u)", f.tid.x, f.tid.y, f.tid.z);
  return buf;
}

std::string site_text(const Site& s) {
  char buf[512];
  format_site(buf, sizeof buf, s);
  return buf;
}

// Switches from the scheduler into fiber f until it yields, blocks or exits.
void resume(Fiber& f) {
  g_run.current = &f;
  g_thread_idx = f.tid;
  g_linear_tid = f.linear;
  context_switch(&g_run.scheduler, &f.ctx);
  g_run.current = nullptr;
}

// Switches from the running fiber back to the scheduler.
void suspend(Fiber& f) { context_switch(&f.ctx, &g_run.scheduler); }

Fiber& running(const char* what) {
  if (!g_run.current) {
    std::fprintf(stderr, "svlp_emu: %s called outside an emulated kernel thread\n", what);
    std::abort();
  }
  return *g_run.current;
}

[[noreturn]] void fiber_main_impl(Fiber& f) {
  g_run.launch->kernel->trampoline(g_run.launch->params);
  f.state = State::Exited;
  --g_run.n_ready;
  ++g_run.n_exited;
  g_run.events = true;
  suspend(f);
  std::abort();  // an exited fiber is never resumed
}

void fiber_main(void* arg) { fiber_main_impl(*static_cast<Fiber*>(arg)); }

// Mask of the lanes of warp w that exist and have not exited, and of those waiting in a
// collective.
void warp_masks(unsigned w, unsigned& live, unsigned& waiting) {
  live = waiting = 0;
  const unsigned base = w * 32, count = std::min(32u, g_run.n - base);
  for (unsigned l = 0; l < count; ++l) {
    const State s = g_run.fibers[base + l].state;
    if (s != State::Exited) live |= 1u << l;
    if (s == State::Warp) waiting |= 1u << l;
  }
}

// Lanes of `waiting` that wait in the same collective as lane `lead` (same call site,
// mask and operation).
unsigned group_of(unsigned base, unsigned lead, unsigned waiting) {
  const Fiber& a = g_run.fibers[base + lead];
  unsigned group = 0;
  for (unsigned m = waiting; m; m &= m - 1) {
    const unsigned l = static_cast<unsigned>(std::countr_zero(m));
    const Fiber& b = g_run.fibers[base + l];
    if (b.mask == a.mask && b.combine == a.combine && same_site(a.site, b.site)) group |= 1u << l;
  }
  return group;
}

// Completes every warp collective whose participants have all arrived. Returns whether
// any did; sets `err` and returns false on a failing collective.
bool resolve_warps(bool& progressed, std::string& err) {
  const unsigned warps = (g_run.n + 31) / 32;
  for (unsigned w = 0; w < warps; ++w) {
    if (g_run.warp_waiting[w] == 0) continue;
    unsigned live, waiting;
    warp_masks(w, live, waiting);
    const unsigned base = w * 32;
    for (unsigned todo = waiting; todo;) {
      const unsigned lead = static_cast<unsigned>(std::countr_zero(todo));
      const unsigned group = group_of(base, lead, todo);
      todo &= ~group;
      Fiber& f = g_run.fibers[base + lead];
      if (group != (f.mask & live)) continue;  // some participant has not arrived
      void* data[32] = {};
      for (unsigned m = group; m; m &= m - 1) {
        const unsigned l = static_cast<unsigned>(std::countr_zero(m));
        data[l] = g_run.fibers[base + l].lane_data;
      }
      char msg[512] = {0};
      if (!f.combine(data, group, msg, sizeof msg)) {
        err = site_text(f.site) + " (warp " + std::to_string(w) + "): " + msg;
        return false;
      }
      for (unsigned m = group; m; m &= m - 1) {
        const unsigned l = static_cast<unsigned>(std::countr_zero(m));
        g_run.fibers[base + l].state = State::Ready;
      }
      const unsigned k = static_cast<unsigned>(std::popcount(group));
      g_run.warp_waiting[w] -= k;
      g_run.n_warp -= k;
      g_run.n_ready += k;
      progressed = true;
    }
  }
  return true;
}

// Called when no thread can run and no collective can complete, but some thread waits
// in a warp collective: explains which lane it waits for and where that lane is.
std::string warp_deadlock() {
  for (const Fiber& f : g_run.fibers) {
    if (f.state != State::Warp) continue;
    const unsigned w = f.linear / 32, base = w * 32;
    unsigned live, waiting;
    warp_masks(w, live, waiting);
    const unsigned group = group_of(base, f.linear % 32, waiting);
    const unsigned missing = (f.mask & live) & ~group;
    if (!missing) continue;
    const Fiber& o = g_run.fibers[base + static_cast<unsigned>(std::countr_zero(missing))];
    char mask[32];
    std::snprintf(mask, sizeof mask, " (mask 0x%08x)", f.mask);
    std::string where;
    if (o.state == State::Barrier) {
      where = "waits at " + site_text(o.site);
    } else if (same_site(o.site, f.site)) {
      char om[32];
      std::snprintf(om, sizeof om, "0x%08x", o.mask);
      where = "waits at the same call with a different mask " + std::string(om);
    } else {
      where = "waits at " + site_text(o.site);
    }
    return "divergent barrier: " + describe(f) + " waits at " + site_text(f.site) + mask +
           " for lane " + std::to_string(o.linear % 32) + " of its warp, but " + describe(o) +
           " " + where +
           "; a warp collective needs every non-exited lane named in its mask at the same "
           "call";
  }
  return "divergent barrier: no thread can make progress";
}

// Every live thread waits at a block barrier: releases it if they all wait at the same
// call site, else reports the divergence.
bool release_barrier(std::string& err) {
  const Fiber* first = nullptr;
  int count = 0;
  bool all = true, any = false;
  for (const Fiber& f : g_run.fibers) {
    if (f.state != State::Barrier) continue;
    if (!first) {
      first = &f;
    } else if (!same_site(first->site, f.site)) {
      err = "divergent barrier: " + describe(*first) + " waits at " + site_text(first->site) +
            " while " + describe(f) + " waits at " + site_text(f.site) +
            "; every non-exited thread of a block must reach the same __syncthreads()";
      return false;
    }
    count += f.bar_pred;
    all = all && f.bar_pred;
    any = any || f.bar_pred;
  }
  const int result = first->bar_kind == BarrierKind::Count ? count
                     : first->bar_kind == BarrierKind::And ? static_cast<int>(all)
                     : first->bar_kind == BarrierKind::Or  ? static_cast<int>(any)
                                                           : 0;
  for (Fiber& f : g_run.fibers) {
    if (f.state != State::Barrier) continue;
    f.bar_result = result;
    f.state = State::Ready;
  }
  g_run.n_ready += g_run.n_barrier;
  g_run.n_barrier = 0;
  return true;
}

// Marks the running fiber as waiting and returns to the scheduler.
void block_on(Fiber& f, State s, const Site& site) {
  f.state = s;
  f.site = site;
  --g_run.n_ready;
  g_run.events = true;
  suspend(f);
}

}  // namespace

bool same_site(const Site& a, const Site& b) {
  return a.loc.line() == b.loc.line() && a.loc.column() == b.loc.column() &&
         (a.loc.file_name() == b.loc.file_name() ||
          std::strcmp(a.loc.file_name(), b.loc.file_name()) == 0);
}

const char* short_path(const char* file) {
  const char* best = file;
  for (const char* p = std::strstr(file, "kernels/"); p; p = std::strstr(p + 1, "kernels/"))
    if (p == file || p[-1] == '/') best = p;
  return best;
}

int block_barrier(const Site& site, BarrierKind kind, int pred) {
  Fiber& f = running("__syncthreads");
  f.bar_kind = kind;
  f.bar_pred = pred;
  ++g_run.n_barrier;
  block_on(f, State::Barrier, site);
  return f.bar_result;
}

void warp_collective(const Site& site, unsigned mask, WarpCombine combine, void* lane_data) {
  Fiber& f = running("a warp collective");
  const unsigned lane = f.linear % 32;
  if (!((mask >> lane) & 1u))
    fail("%s: the calling lane %u is not in the mask 0x%08x", site_text(site).c_str(), lane,
         mask);
  f.mask = mask;
  f.combine = combine;
  f.lane_data = lane_data;
  ++g_run.warp_waiting[f.linear / 32];
  ++g_run.n_warp;
  block_on(f, State::Warp, site);
}

unsigned live_lanes() {
  const Fiber& f = running("__activemask");
  unsigned live, waiting;
  warp_masks(f.linear / 32, live, waiting);
  return live;
}

void yield_thread() { suspend(running("__nanosleep")); }

void fail(const char* fmt, ...) {
  Fiber& f = running("svlp_emu::fail");
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  g_run.failed = true;
  g_run.fail_msg = describe(f) + ": " + msg;
  suspend(f);
  std::abort();  // a failed launch never resumes its fibers
}

void assert_fail(const char* expr, const char* file, unsigned line) {
  if (!g_run.current) {
    std::fprintf(stderr, "svlp_emu: assertion `%s` failed at %s:%u\n", expr, short_path(file), line);
    std::abort();
  }
  fail("assertion `%s` failed at %s:%u", expr, short_path(file), line);
}

bool run_block(const BlockLaunch& launch, uint3 block_idx, std::string& err) {
  static StackPool stacks;
  g_stacks = &stacks;
  const dim3 bd = g_block_dim;
  const unsigned n = bd.x * bd.y * bd.z;
  g_block_idx = block_idx;
  g_run.launch = &launch;
  g_run.n = n;
  g_run.fibers.resize(n);
  g_run.warp_waiting.assign((n + 31) / 32, 0);
  g_run.n_ready = n;
  g_run.n_barrier = g_run.n_warp = g_run.n_exited = 0;
  g_run.failed = false;
  g_run.fail_msg.clear();
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = g_run.fibers[i];
    void* stack = stacks.stack(i);
    if (!stack) {
      err = "cannot map a fiber stack for thread " + std::to_string(i);
      return false;
    }
    f = Fiber{};
    f.linear = i;
    f.tid = uint3{i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y)};
    context_init(&f.ctx, stack, stacks.size(), &fiber_main, &f);
  }

  unsigned idle_rounds = 0;
  while (g_run.n_exited < n) {
    g_run.events = false;
    for (unsigned k = 0; k < n; ++k) {
      Fiber& f = g_run.fibers[launch.descending ? n - 1 - k : k];
      if (f.state != State::Ready) continue;
      resume(f);
      if (g_run.failed) {
        err = g_run.fail_msg;
        return false;
      }
    }
    if (g_run.n_exited == n) break;
    bool progressed = false;
    if (!resolve_warps(progressed, err)) return false;
    if (progressed) {
      idle_rounds = 0;
      continue;
    }
    if (g_run.n_ready > 0) {  // only __nanosleep yields: a spin-wait
      idle_rounds = g_run.events ? 0 : idle_rounds + 1;
      if (idle_rounds > kMaxIdleRounds) {
        err = "no progress: every running thread keeps spinning in __nanosleep (a spin-wait "
              "on another block or on a thread that never writes?)";
        return false;
      }
      continue;
    }
    idle_rounds = 0;
    if (g_run.n_warp > 0) {
      err = warp_deadlock();
      return false;
    }
    if (!release_barrier(err)) return false;
  }

  for (unsigned i = 0; i < n; ++i) {
    if (!stacks.check_canary(i)) {
      err = "thread " + std::to_string(i) + " overflowed its fiber stack (" +
            std::to_string(stacks.size() / 1024) +
            " KiB; raise SVLP_EMU_STACK_KIB or shrink the kernel's local arrays)";
      return false;
    }
  }
  return true;
}

}  // namespace svlp_emu
