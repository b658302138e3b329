// CUDA emulator: the fiber context switch (see fiber_context.h).
//
// x86-64 System V: a switch pushes the callee-saved registers rbp, rbx, r12–r15 and the
// x87 control word / MXCSR onto the current stack, stores rsp into `from`, loads rsp from
// `to` and pops the same frame. Caller-saved registers need no saving: the switch is an
// ordinary function call for the compiler. A fresh context is a fake frame whose return
// address is svlp_emu_ctx_start, which calls entry(arg) (r13(r12)) on a 16-byte aligned
// stack. Not compatible with CET shadow stacks (the objects carry no SHSTK property, so
// the linker leaves shadow stacks off for the binary).
#include "fiber_context.h"

#include <cstdint>
#include <cstdlib>

#if !defined(SVLP_EMU_UCONTEXT)

extern "C" void svlp_emu_ctx_switch(void** save_sp, void* load_sp);
extern "C" void svlp_emu_ctx_start();

__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl svlp_emu_ctx_switch\n"
    ".hidden svlp_emu_ctx_switch\n"
    ".type svlp_emu_ctx_switch,@function\n"
    "svlp_emu_ctx_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $16, %rsp\n"
    "  fnstcw (%rsp)\n"
    "  stmxcsr 8(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  fldcw (%rsp)\n"
    "  ldmxcsr 8(%rsp)\n"
    "  addq $16, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size svlp_emu_ctx_switch, .-svlp_emu_ctx_switch\n"
    ".p2align 4\n"
    ".globl svlp_emu_ctx_start\n"
    ".hidden svlp_emu_ctx_start\n"
    ".type svlp_emu_ctx_start,@function\n"
    "svlp_emu_ctx_start:\n"
    "  movq %r12, %rdi\n"
    "  callq *%r13\n"
    "  ud2\n"
    ".size svlp_emu_ctx_start, .-svlp_emu_ctx_start\n");

namespace svlp_emu {

void context_init(FiberContext* ctx, void* stack_lo, std::size_t size, void (*entry)(void*),
                  void* arg) {
  const auto top = (reinterpret_cast<std::uintptr_t>(stack_lo) + size) & ~std::uintptr_t{15};
  auto* sp = reinterpret_cast<std::uint64_t*>(top);
  *--sp = 0;                                                        // padding
  *--sp = 0;                                                        // (keeps rsp 16-aligned at the call)
  *--sp = reinterpret_cast<std::uint64_t>(&svlp_emu_ctx_start);     // return address
  *--sp = 0;                                                        // rbp
  *--sp = 0;                                                        // rbx
  *--sp = reinterpret_cast<std::uint64_t>(arg);                     // r12
  *--sp = reinterpret_cast<std::uint64_t>(entry);                   // r13
  *--sp = 0;                                                        // r14
  *--sp = 0;                                                        // r15
  *--sp = 0x1f80;  // MXCSR: all exceptions masked, round to nearest, no FTZ/DAZ
  *--sp = 0x037f;  // x87 control word: default
  ctx->sp = sp;
}

void context_switch(FiberContext* from, FiberContext* to) { svlp_emu_ctx_switch(&from->sp, to->sp); }

}  // namespace svlp_emu

#else  // ucontext fallback

namespace svlp_emu {
namespace {
// makecontext passes int arguments only: the entry and its argument travel in two pairs.
void ucontext_entry(unsigned e_hi, unsigned e_lo, unsigned a_hi, unsigned a_lo) {
  auto entry = reinterpret_cast<void (*)(void*)>((std::uintptr_t{e_hi} << 32) | e_lo);
  auto* arg = reinterpret_cast<void*>((std::uintptr_t{a_hi} << 32) | a_lo);
  entry(arg);
  std::abort();  // entry never returns
}
}  // namespace

void context_init(FiberContext* ctx, void* stack_lo, std::size_t size, void (*entry)(void*),
                  void* arg) {
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = stack_lo;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = nullptr;
  const auto e = reinterpret_cast<std::uintptr_t>(entry);
  const auto a = reinterpret_cast<std::uintptr_t>(arg);
  makecontext(&ctx->uc, reinterpret_cast<void (*)()>(&ucontext_entry), 4,
              static_cast<unsigned>(e >> 32), static_cast<unsigned>(e),
              static_cast<unsigned>(a >> 32), static_cast<unsigned>(a));
}

void context_switch(FiberContext* from, FiberContext* to) { swapcontext(&from->uc, &to->uc); }

}  // namespace svlp_emu

#endif
