// CUDA emulator: finding and poisoning static shared memory (see shared_memory.h).
//
// A `__shared__` variable is a `static` (cuda_emu.h), so it keeps its values from one
// launch to the next. Poisoning it at every launch makes a kernel that reads shared
// memory it never wrote in this launch behave the same every time (determinism) and shows
// such reads as NaN. The variables are found in two ways, both on ELF targets only:
//  1. cuda_emu.h places every __shared__ variable in the section `svlp_emu_shared`,
//     whose bounds the linker exports as __start_/__stop_svlp_emu_shared — except that
//     GCC before 14 ignores the section attribute on statics inside templates;
//  2. so the symbol table of the binary is read once as well: kernel code lives in the
//     namespace `(anonymous)::svlp_emu_kernels` (build_emu.rs), so its function-local
//     statics have mangled names starting _Z[Z...]N12_GLOBAL__N_116svlp_emu_kernels, and
//     CUDA allows no writable function-local statics in device code but __shared__ ones.
// A stripped binary has no symbol table: then only (1) applies.
#include "shared_memory.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__ELF__) && defined(__linux__)
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define SVLP_EMU_SYMTAB 1
#endif

#if defined(__ELF__)
extern "C" char __start_svlp_emu_shared[] __attribute__((weak, visibility("hidden")));
extern "C" char __stop_svlp_emu_shared[] __attribute__((weak, visibility("hidden")));
// Guarantees the section exists, and marks this object in the symbol table.
extern "C" {
__attribute__((section("svlp_emu_shared"), used, visibility("hidden"))) char svlp_emu_shared_anchor[16];
}
#endif

namespace svlp_emu {

alignas(128) unsigned char g_dynamic_buffer[kMaxDynamicShared];
unsigned char* g_dynamic_smem = g_dynamic_buffer;

namespace {

struct Range {
  std::uintptr_t begin, end;
};

#if defined(SVLP_EMU_SYMTAB)
constexpr const char* kKernelNamespace = "N12_GLOBAL__N_116svlp_emu_kernels";

// True for the mangled name of a function-local static of kernel code.
bool is_kernel_local_static(const char* name) {
  if (name[0] != '_' || name[1] != 'Z' || name[2] != 'Z') return false;
  const char* p = name + 2;
  while (*p == 'Z') ++p;
  return std::strncmp(p, kKernelNamespace, std::strlen(kKernelNamespace)) == 0;
}

// The file and load bias of the loaded object that contains `addr`.
struct ObjectOf {
  std::uintptr_t addr = 0;
  std::string path;
  std::uintptr_t bias = 0;
  bool found = false;
};

int find_object(dl_phdr_info* info, std::size_t, void* data) {
  auto* want = static_cast<ObjectOf*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (want->addr >= lo && want->addr < lo + ph.p_memsz) {
      want->path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
      want->bias = info->dlpi_addr;
      want->found = true;
      return 1;
    }
  }
  return 0;
}

// Adds the kernel statics found in the symbol table of the object holding this code.
void add_symbol_ranges(std::vector<Range>& out) {
  ObjectOf self;
  self.addr = reinterpret_cast<std::uintptr_t>(&svlp_emu_shared_anchor[0]);
  dl_iterate_phdr(&find_object, &self);
  if (!self.found) return;
  const int fd = open(self.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  void* map = MAP_FAILED;
  if (fstat(fd, &st) == 0 && st.st_size > static_cast<off_t>(sizeof(ElfW(Ehdr))))
    map = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto size = static_cast<std::size_t>(st.st_size);
  const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(base);
  const bool ok = std::memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
                  eh->e_shentsize == sizeof(ElfW(Shdr)) &&
                  eh->e_shoff + std::size_t{eh->e_shnum} * sizeof(ElfW(Shdr)) <= size;
  if (ok) {
    const auto* sh = reinterpret_cast<const ElfW(Shdr)*>(base + eh->e_shoff);
    for (unsigned s = 0; s < eh->e_shnum; ++s) {
      if (sh[s].sh_type != SHT_SYMTAB || sh[s].sh_link >= eh->e_shnum) continue;
      const ElfW(Shdr)& strs = sh[sh[s].sh_link];
      if (sh[s].sh_offset + sh[s].sh_size > size || strs.sh_offset + strs.sh_size > size) continue;
      const auto* syms = reinterpret_cast<const ElfW(Sym)*>(base + sh[s].sh_offset);
      const std::size_t count = sh[s].sh_size / sizeof(ElfW(Sym));
      const char* names = reinterpret_cast<const char*>(base + strs.sh_offset);
      // The anchor's symbol gives the run-time offset of this object's addresses.
      std::uintptr_t bias = self.bias;
      for (std::size_t i = 0; i < count; ++i)
        if (syms[i].st_name < strs.sh_size &&
            std::strcmp(names + syms[i].st_name, "svlp_emu_shared_anchor") == 0)
          bias = reinterpret_cast<std::uintptr_t>(&svlp_emu_shared_anchor[0]) - syms[i].st_value;
      for (std::size_t i = 0; i < count; ++i) {
        const ElfW(Sym)& sym = syms[i];
        if (ELF64_ST_TYPE(sym.st_info) != STT_OBJECT || sym.st_size == 0) continue;
        if (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= eh->e_shnum) continue;
        const auto flags = sh[sym.st_shndx].sh_flags;
        if (!(flags & SHF_WRITE) || !(flags & SHF_ALLOC) || (flags & SHF_TLS)) continue;
        if (sym.st_name >= strs.sh_size || !is_kernel_local_static(names + sym.st_name)) continue;
        out.push_back({sym.st_value + bias, sym.st_value + bias + sym.st_size});
      }
    }
  }
  munmap(map, size);
}
#endif

// Every static shared variable, as disjoint sorted ranges (computed once).
const std::vector<Range>& static_shared_ranges() {
  static const std::vector<Range> ranges = [] {
    std::vector<Range> r;
#if defined(__ELF__)
    if (__start_svlp_emu_shared && __stop_svlp_emu_shared)
      r.push_back({reinterpret_cast<std::uintptr_t>(__start_svlp_emu_shared),
                   reinterpret_cast<std::uintptr_t>(__stop_svlp_emu_shared)});
#endif
#if defined(SVLP_EMU_SYMTAB)
    add_symbol_ranges(r);
#endif
    std::sort(r.begin(), r.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    std::vector<Range> merged;
    for (const Range& x : r) {
      if (!merged.empty() && x.begin <= merged.back().end)
        merged.back().end = std::max(merged.back().end, x.end);
      else
        merged.push_back(x);
    }
    return merged;
  }();
  return ranges;
}

}  // namespace

void poison_shared_memory(std::size_t dynamic_bytes) {
  for (const Range& r : static_shared_ranges())
    std::memset(reinterpret_cast<void*>(r.begin), 0xff, r.end - r.begin);
  std::memset(g_dynamic_buffer, 0xff, dynamic_bytes);
}

}  // namespace svlp_emu
