// CUDA emulator: the pool of fiber stacks. Stacks are mapped once, on first use, and
// reused by every later block and launch (a block of n threads uses stacks 0..n-1). Each
// stack sits above an inaccessible guard page, so running off its end faults at once
// instead of corrupting a neighbour, and carries a canary word just above the guard that
// the scheduler checks after each block.
#pragma once

#include <cstddef>
#include <vector>

namespace svlp_emu {

class StackPool {
 public:
  // Usable bytes per stack: $SVLP_EMU_STACK_KIB KiB (default 256), read once.
  StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool();

  // Lowest usable address of stack i (mapping it if needed); nullptr if mapping failed.
  void* stack(std::size_t i);
  std::size_t size() const { return size_; }
  // False if the thread that used stack i reached its lowest bytes (overflow); the
  // canary is rewritten, so the next use starts clean.
  bool check_canary(std::size_t i);

 private:
  std::size_t size_;
  std::size_t guard_;
  std::vector<void*> maps_;  // start of each mapping (guard page first)
};

}  // namespace svlp_emu
