// CUDA emulator: fiber stacks with guard pages and canaries (see fiber_stack.h).
#include "fiber_stack.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace svlp_emu {
namespace {
constexpr std::uint64_t kCanary = 0x5356'4c50'454d'5521ull;  // "SVLPEMU!"
constexpr std::size_t kCanaryBytes = 64;

std::size_t stack_bytes_from_env() {
  std::size_t kib = 256;
  if (const char* v = std::getenv("SVLP_EMU_STACK_KIB")) {
    const long parsed = std::strtol(v, nullptr, 10);
    if (parsed >= 16 && parsed <= 65536) kib = static_cast<std::size_t>(parsed);
  }
  return kib * 1024;
}
}  // namespace

StackPool::StackPool() {
  const long page = sysconf(_SC_PAGESIZE);
  guard_ = page > 0 ? static_cast<std::size_t>(page) : 4096;
  size_ = (stack_bytes_from_env() + guard_ - 1) / guard_ * guard_;
}

StackPool::~StackPool() {
  for (void* m : maps_)
    if (m) munmap(m, guard_ + size_);
}

void* StackPool::stack(std::size_t i) {
  if (i >= maps_.size()) maps_.resize(i + 1, nullptr);
  if (!maps_[i]) {
    void* m = mmap(nullptr, guard_ + size_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    if (mprotect(m, guard_, PROT_NONE) != 0) {
      munmap(m, guard_ + size_);
      return nullptr;
    }
    auto* lo = static_cast<std::uint64_t*>(static_cast<void*>(static_cast<char*>(m) + guard_));
    for (std::size_t w = 0; w < kCanaryBytes / 8; ++w) lo[w] = kCanary;
    maps_[i] = m;
  }
  return static_cast<char*>(maps_[i]) + guard_;
}

bool StackPool::check_canary(std::size_t i) {
  if (i >= maps_.size() || !maps_[i]) return true;
  auto* lo = reinterpret_cast<std::uint64_t*>(static_cast<char*>(maps_[i]) + guard_);
  bool intact = true;
  for (std::size_t w = 0; w < kCanaryBytes / 8; ++w) {
    intact = intact && lo[w] == kCanary;
    lo[w] = kCanary;
  }
  return intact;
}

}  // namespace svlp_emu
