// Emulator self-test: kernel faults that must fail the launch with a message instead of
// killing the process.
//   emu_selftest_faults  thread assert_at fails an assert(); thread trap_at calls __trap()
//                        (-1: nobody); every other thread writes out[t] = t
// Work split: one 1-D block; thread t owns out[t].
#include <assert.h>

extern "C" __global__ void emu_selftest_faults(int* out, int assert_at, int trap_at) {
  const int t = threadIdx.x;
  assert(t != assert_at);
  if (t == trap_at) __trap();
  out[t] = t;
}
