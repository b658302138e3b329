// CUDA emulator: user-mode execution contexts for fibers — create a context that will run
// entry(arg) on a given stack, and switch from one context to another. On x86-64 ELF this
// is a 20-instruction assembly switch (fiber_context.cpp) that saves the callee-saved
// registers and the SSE/x87 control words; elsewhere it falls back to ucontext (about ten
// times slower, same semantics).
#pragma once

#include <cstddef>

#if !(defined(__x86_64__) && defined(__ELF__))
#define SVLP_EMU_UCONTEXT 1
#include <ucontext.h>
#endif

namespace svlp_emu {

struct FiberContext {
#if defined(SVLP_EMU_UCONTEXT)
  ucontext_t uc;
#else
  void* sp = nullptr;  // saved stack pointer; the registers are on the stack below it
#endif
};

// Prepares `ctx` so that switching to it calls entry(arg) on the stack
// [stack_lo, stack_lo + size). `entry` must never return: it switches away for good.
void context_init(FiberContext* ctx, void* stack_lo, std::size_t size, void (*entry)(void*),
                  void* arg) __attribute__((visibility("hidden")));

// Saves the current execution state into `from` and resumes `to`. Returns when some
// other context switches back to `from`.
void context_switch(FiberContext* from, FiberContext* to) __attribute__((visibility("hidden")));

}  // namespace svlp_emu
