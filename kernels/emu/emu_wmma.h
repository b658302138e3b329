// CUDA emulator: nvcuda::wmma (the warp matrix multiply-accumulate API of mma.h).
//
// Every lane holds the WHOLE tile of a fragment, in row-major order (`x[r * cols + c]`),
// redundantly: load_matrix_sync and store_matrix_sync are done by every lane on its own
// copy (they are not yield points), fill_fragment and element-wise loops over
// `num_elements` work as in CUDA. mma_sync is a warp collective: when all live lanes of
// the warp have arrived, D = A·B + C is computed once (f32 accumulation for __half,
// __nv_bfloat16 and tf32 inputs, f64 for double, k in ascending order) and written to
// every lane's D; the lanes must hold identical A, B and C (same pointer and ldm in every
// lane, as CUDA requires), otherwise the launch fails with a message.
//
// Shapes and types accepted as in CUDA: m16n16k16, m32n8k16, m8n32k16 with __half or
// __nv_bfloat16 inputs and float (or __half) accumulators; m16n16k8 with
// wmma::precision::tf32 inputs; m8n8k4 with double.
#pragma once

#include <bit>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include "emu_builtins.h"
#include "emu_half.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

// Rounds a float to tf32 (10 mantissa bits), to nearest with ties away from zero like
// cvt.rna.tf32.f32.
inline float __float_to_tf32(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  return std::bit_cast<float>(u);
}

}  // namespace wmma
}  // namespace nvcuda

namespace svlp_emu::wmma_detail {
namespace wmma = nvcuda::wmma;

template <typename Use, int M, int N, int K>
struct Shape;
template <int M, int N, int K>
struct Shape<wmma::matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Shape<wmma::matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Shape<wmma::accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <typename T>
struct Storage {
  using type = T;
};
template <>
struct Storage<wmma::precision::tf32> {
  using type = float;
};

// The fragment types and shapes CUDA accepts.
template <typename Use, int M, int N, int K, typename T>
constexpr bool supported() {
  constexpr bool mnk16 = (M == 16 && N == 16 && K == 16) || (M == 32 && N == 8 && K == 16) ||
                         (M == 8 && N == 32 && K == 16);
  if constexpr (std::is_same_v<Use, wmma::accumulator>) {
    if constexpr (std::is_same_v<T, float>) return mnk16 || (M == 16 && N == 16 && K == 8);
    if constexpr (std::is_same_v<T, __half>) return mnk16;
    if constexpr (std::is_same_v<T, double>) return M == 8 && N == 8 && K == 4;
    return false;
  } else {
    if constexpr (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) return mnk16;
    if constexpr (std::is_same_v<T, wmma::precision::tf32>) return M == 16 && N == 16 && K == 8;
    if constexpr (std::is_same_v<T, double>) return M == 8 && N == 8 && K == 4;
    return false;
  }
}

// An input or accumulator element in the compute type.
inline float widen(__half v) { return __half2float(v); }
inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
inline float widen(float v) { return v; }
inline double widen(double v) { return v; }

// A lane's share of an mma_sync collective.
struct MmaLane {
  void* d;
  const void* a;
  const void* b;
  const void* c;
  bool satf;
};

}  // namespace svlp_emu::wmma_detail

namespace nvcuda {
namespace wmma {

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  static_assert(svlp_emu::wmma_detail::supported<Use, M, N, K, T>(),
                "wmma::fragment: shape/type combination that CUDA does not support");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_void_v<Layout>
                                                 : (std::is_void_v<Layout> ||
                                                    std::is_same_v<Layout, row_major> ||
                                                    std::is_same_v<Layout, col_major>),
                "wmma::fragment: accumulators take no layout; matrix_a/b take row_major, "
                "col_major or none");

 public:
  using element_type = typename svlp_emu::wmma_detail::Storage<T>::type;
  using storage_element_type = element_type;
  static constexpr int num_rows = svlp_emu::wmma_detail::Shape<Use, M, N, K>::rows;
  static constexpr int num_cols = svlp_emu::wmma_detail::Shape<Use, M, N, K>::cols;
  static constexpr int num_elements = num_rows * num_cols;
  // The whole tile, row-major: element (r, c) is x[r * num_cols + c].
  element_type x[num_elements];
};

template <typename Use, int M, int N, int K, typename T, typename L, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, const V& v) {
  using E = typename fragment<Use, M, N, K, T, L>::element_type;
  const E e = static_cast<E>(v);
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = e;
}

namespace detail_emu {
template <typename F, typename P>
inline void load_tile(F& f, const P* p, unsigned ldm, bool col_major_memory) {
  for (int r = 0; r < F::num_rows; ++r)
    for (int c = 0; c < F::num_cols; ++c)
      f.x[r * F::num_cols + c] =
          col_major_memory ? p[static_cast<size_t>(c) * ldm + r] : p[static_cast<size_t>(r) * ldm + c];
}
}  // namespace detail_emu

// matrix_a / matrix_b with a compile-time layout.
template <typename Use, int M, int N, int K, typename T, typename L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f,
                             const typename fragment<Use, M, N, K, T, L>::element_type* p,
                             unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator> && !std::is_void_v<L>,
                "load_matrix_sync without a layout argument needs a matrix_a/b fragment with a "
                "layout");
  detail_emu::load_tile(f, p, ldm, std::is_same_v<L, col_major>);
}

// Accumulators and layout-less matrix_a / matrix_b: layout given at run time.
template <typename Use, int M, int N, int K, typename T>
inline void load_matrix_sync(fragment<Use, M, N, K, T, void>& f,
                             const typename fragment<Use, M, N, K, T, void>::element_type* p,
                             unsigned ldm, layout_t layout) {
  detail_emu::load_tile(f, p, ldm, layout == mem_col_major);
}

template <int M, int N, int K, typename T>
inline void store_matrix_sync(typename fragment<accumulator, M, N, K, T>::element_type* p,
                              const fragment<accumulator, M, N, K, T>& f, unsigned ldm,
                              layout_t layout) {
  using F = fragment<accumulator, M, N, K, T>;
  for (int r = 0; r < F::num_rows; ++r)
    for (int c = 0; c < F::num_cols; ++c) {
      const size_t at = layout == mem_col_major ? static_cast<size_t>(c) * ldm + r
                                                : static_cast<size_t>(r) * ldm + c;
      p[at] = f.x[r * F::num_cols + c];
    }
}

}  // namespace wmma
}  // namespace nvcuda

namespace svlp_emu::wmma_detail {

// Runs once per warp-wide mma_sync: checks the lanes agree, computes D = A·B + C from the
// first participant's fragments and copies D to every participant.
template <typename FD, typename FA, typename FB, typename FC>
bool mma_combine(void* const* lanes, unsigned participants, char* err, std::size_t err_len) {
  constexpr int M = FA::num_rows, K = FA::num_cols, N = FB::num_cols;
  using In = typename FA::element_type;
  using Acc = std::conditional_t<std::is_same_v<In, double>, double, float>;
  constexpr bool tf32 = std::is_same_v<In, float>;
  const int first = std::countr_zero(participants);
  const MmaLane* l0 = static_cast<const MmaLane*>(lanes[first]);
  for (int l = first + 1; l < 32; ++l) {
    if (!((participants >> l) & 1u)) continue;
    const MmaLane* li = static_cast<const MmaLane*>(lanes[l]);
    const char* which = std::memcmp(li->a, l0->a, sizeof(FA)) != 0   ? "A"
                        : std::memcmp(li->b, l0->b, sizeof(FB)) != 0 ? "B"
                        : std::memcmp(li->c, l0->c, sizeof(FC)) != 0 ? "C"
                                                                      : nullptr;
    if (which) {
      std::snprintf(err, err_len,
                    "lane %d holds a different %s fragment than lane %d (every lane of the warp "
                    "must load the same tile: same pointer and ldm)",
                    l, which, first);
      return false;
    }
  }
  const FA& a = *static_cast<const FA*>(l0->a);
  const FB& b = *static_cast<const FB*>(l0->b);
  const FC& c = *static_cast<const FC*>(l0->c);
  Acc av[M * K], bv[K * N], dv[M * N];
  for (int i = 0; i < M * K; ++i) {
    av[i] = widen(a.x[i]);
    if constexpr (tf32) av[i] = std::bit_cast<float>(std::bit_cast<std::uint32_t>(av[i]) & 0xffffe000u);
  }
  for (int i = 0; i < K * N; ++i) {
    bv[i] = widen(b.x[i]);
    if constexpr (tf32) bv[i] = std::bit_cast<float>(std::bit_cast<std::uint32_t>(bv[i]) & 0xffffe000u);
  }
  for (int i = 0; i < M * N; ++i) dv[i] = static_cast<Acc>(widen(c.x[i]));
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) {
      const Acc aik = av[i * K + k];
      for (int j = 0; j < N; ++j) dv[i * N + j] += aik * bv[k * N + j];
    }
  if (l0->satf) {
    const Acc big = static_cast<Acc>(std::is_same_v<typename FD::element_type, __half> ? 65504.0 : 3.4028234663852886e38);
    for (auto& v : dv) v = v != v ? Acc(0) : (v > big ? big : (v < -big ? -big : v));
  }
  using E = typename FD::element_type;
  for (int l = first; l < 32; ++l) {
    if (!((participants >> l) & 1u)) continue;
    FD& d = *static_cast<FD*>(static_cast<const MmaLane*>(lanes[l])->d);
    for (int i = 0; i < M * N; ++i) d.x[i] = static_cast<E>(dv[i]);
  }
  return true;
}

}  // namespace svlp_emu::wmma_detail

namespace nvcuda {
namespace wmma {

template <int M, int N, int K, typename TD, typename TAB, typename LA, typename LB, typename TC>
inline void mma_sync(fragment<accumulator, M, N, K, TD>& d,
                     const fragment<matrix_a, M, N, K, TAB, LA>& a,
                     const fragment<matrix_b, M, N, K, TAB, LB>& b,
                     const fragment<accumulator, M, N, K, TC>& c, bool satf = false,
                     svlp_emu::Loc loc = svlp_emu::Loc::current()) {
  using namespace svlp_emu::wmma_detail;
  MmaLane lane{&d, &a, &b, &c, satf};
  svlp_emu::warp_collective(
      {"wmma::mma_sync()", loc}, 0xffffffffu,
      &mma_combine<fragment<accumulator, M, N, K, TD>, fragment<matrix_a, M, N, K, TAB, LA>,
                   fragment<matrix_b, M, N, K, TAB, LB>, fragment<accumulator, M, N, K, TC>>,
      &lane);
}

}  // namespace wmma
}  // namespace nvcuda
