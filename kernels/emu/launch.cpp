// CUDA emulator: the launch entry point of the C ABI, svlp_emu_launch. It validates the
// launch like the CUDA driver would (unknown kernel, block or grid out of range, too much
// dynamic shared memory), takes the process-wide launch lock, poisons shared memory, and
// runs the blocks one after another — x fastest, then y, then z; reversed under the
// descending schedule — on the block scheduler.
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "emu_runtime.h"
#include "registry.h"
#include "scheduler.h"
#include "shared_memory.h"

namespace svlp_emu {

namespace {

std::mutex g_launch_lock;

// Writes the message into the caller's buffer (always NUL-terminated) and returns code.
int report(char* err, std::size_t err_len, int code, const std::string& msg) {
  if (err && err_len > 0) {
    const std::size_t n = std::min(msg.size(), err_len - 1);
    std::memcpy(err, msg.data(), n);
    err[n] = '\0';
  }
  return code;
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// Up to `max` registered names, those sharing the longest prefix with `name` first.
std::string suggestions(const char* name, int max) {
  std::vector<std::pair<int, const char*>> ranked;
  for (int i = 0; i < g_kernel_count; ++i) {
    const char* k = g_kernels[i]->name;
    int common = 0;
    while (k[common] && k[common] == name[common]) ++common;
    ranked.emplace_back(-common, k);
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (int i = 0; i < static_cast<int>(ranked.size()) && i < max; ++i) {
    if (i) out += ", ";
    out += ranked[static_cast<std::size_t>(i)].second;
  }
  if (static_cast<int>(ranked.size()) > max) out += ", ...";
  return out;
}

int launch(const char* kernel, dim3 grid, dim3 block, std::size_t dynamic_bytes, void** params,
           bool descending, char* err, std::size_t err_len) {
  if (!kernel) return report(err, err_len, 1, "svlp_emu_launch: the kernel name is NULL");
  const KernelEntry* k = find_kernel(kernel);
  if (!k) {
    return report(err, err_len, 1,
                  format("unknown kernel `%s`: the emulator has %d kernels (%s); a kernel is "
                         "registered when kernels/*.cu declares it as `extern \"C\" __global__ "
                         "void %s(`",
                         kernel, g_kernel_count, suggestions(kernel, 6).c_str(), kernel));
  }
  const std::string head =
      format("kernel `%s` (%s), grid (%u,%u,%u), block (%u,%u,%u)", k->name, k->source, grid.x,
             grid.y, grid.z, block.x, block.y, block.z);
  const unsigned long long threads =
      static_cast<unsigned long long>(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0)
    return report(err, err_len, 2, head + ": every grid and block dimension must be at least 1");
  if (threads > 1024)
    return report(err, err_len, 2,
                  head + format(": block too large: %llu threads, at most 1024", threads));
  if (block.x > 1024 || block.y > 1024 || block.z > 64)
    return report(err, err_len, 2,
                  head + ": block dimensions are limited to (1024, 1024, 64)");
  if (grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return report(err, err_len, 2,
                  head + ": grid dimensions are limited to (2^31-1, 65535, 65535)");
  if (dynamic_bytes > kMaxDynamicShared)
    return report(err, err_len, 2,
                  head + format(": %zu bytes of dynamic shared memory, at most %zu", dynamic_bytes,
                                kMaxDynamicShared));
  if (!params && k->param_count > 0)
    return report(err, err_len, 2,
                  head + format(": params is NULL but the kernel takes %d parameters",
                                k->param_count));

  std::lock_guard<std::mutex> lock(g_launch_lock);
  poison_shared_memory(dynamic_bytes);
  g_grid_dim = grid;
  g_block_dim = block;
  const BlockLaunch bl{k, params, descending};
  const unsigned long long blocks = static_cast<unsigned long long>(grid.x) * grid.y * grid.z;
  std::string why;
  for (unsigned long long b = 0; b < blocks; ++b) {
    const unsigned long long i = descending ? blocks - 1 - b : b;
    const uint3 idx{static_cast<unsigned>(i % grid.x), static_cast<unsigned>((i / grid.x) % grid.y),
                    static_cast<unsigned>(i / (static_cast<unsigned long long>(grid.x) * grid.y))};
    if (!run_block(bl, idx, why))
      return report(err, err_len, 3,
                    head + format(": block (%u,%u,%u): ", idx.x, idx.y, idx.z) + why);
  }
  return 0;
}

}  // namespace
}  // namespace svlp_emu

extern "C" {

// Runs `kernel` on the emulator, cuLaunchKernel-style: params[i] points to argument i.
// Returns 0 on success; otherwise writes a NUL-terminated message naming the kernel into
// err (err_len bytes) and returns 1 (unknown kernel), 2 (invalid launch configuration)
// or 3 (the kernel failed: divergent barrier, __trap, stack overflow, ...).
int svlp_emu_launch(const char* kernel, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                    unsigned by, unsigned bz, size_t dynamic_shared_bytes, void** params,
                    int descending_order, char* err, size_t err_len) {
  try {
    return svlp_emu::launch(kernel, dim3(gx, gy, gz), dim3(bx, by, bz), dynamic_shared_bytes,
                            params, descending_order != 0, err, err_len);
  } catch (const std::exception& e) {
    return svlp_emu::report(err, err_len, 3, std::string("emulator error: ") + e.what());
  }
}

}  // extern "C"
