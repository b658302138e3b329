// CUDA emulator stand-in for <assert.h> (and so <cassert>): a failing device-side
// assert() makes the launch return an error naming the kernel, the thread, the condition
// and its file:line — as a device assert fails a CUDA launch — instead of aborting the
// whole process. Like the C header it has no include guard for the macro: every
// inclusion re-reads NDEBUG.
#ifndef SVLP_EMU_ASSERT_DECLARED
#define SVLP_EMU_ASSERT_DECLARED
namespace svlp_emu {
[[noreturn]] void assert_fail(const char* expr, const char* file, unsigned line)
    __attribute__((visibility("hidden")));
}  // namespace svlp_emu
#endif

#undef assert
#ifdef NDEBUG
#define assert(e) (static_cast<void>(0))
#else
#define assert(e) \
  (static_cast<bool>(e) ? static_cast<void>(0) : ::svlp_emu::assert_fail(#e, __FILE__, __LINE__))
#endif
