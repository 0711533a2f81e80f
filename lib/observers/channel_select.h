// Internal to the CPU per-channel kernels (channel_kernel_cpu.cpp, channel_scan.cpp): exact selection of
// the k-th value by order-preserving integer keys, over one channel of an [outer, C, inner] tensor or a
// contiguous buffer. Templates and inlines only: radix_select reads its source run by run.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "observers/channel_kernel.h"

namespace qreport::observers::detail {

// Channels up to this size are gathered and selected directly: a sample would cost as much.
constexpr int64_t kDirectSelect = 256;

// Order-preserving integer key of a float; -0.0 and +0.0 share the key of +0.0 (v + 0.0f is +0.0 for both).
inline uint32_t key_of(float v) {
  v += 0.0f;
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
}

inline float value_of(uint32_t key) {
  uint32_t u = key ^ ((key & 0x80000000u) ? 0x80000000u : 0xFFFFFFFFu);
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}


// One channel of an [outer, C, inner] tensor: `outer` runs of `inner` contiguous values, `stride` apart.
struct Channel {
  const float* base;
  int64_t outer, inner, stride;
  int64_t size() const { return outer * inner; }
  template <class F>
  void for_each_run(F&& f) const {
    for (int64_t o = 0; o < outer; ++o) f(base + o * stride, inner);
  }
};

// k-th smallest of v[0, n) (no NaN), reordering v.
inline float nth_in_place(float* v, int64_t n, int64_t k) {
  std::nth_element(v, v + k, v + n);
  return canonical(v[k]);
}

// Radix selection over key space; the candidates that share the k-th value's top digits are compacted
// into scratch and the next digit is examined there, until few remain.
template <class Source>
float radix_select(const Source& src, int64_t k, float mn, float mx, std::vector<float>& scratch) {
  constexpr int kBits = 11;
  constexpr uint32_t kBins = 1u << kBits;
  uint32_t hist[kBins];
  uint32_t lo = key_of(mn), hi = key_of(mx);
  bool first = true;
  int64_t n = src.size();
  while (true) {
    if (lo == hi) return value_of(lo);  // every candidate left has this key, so this value
    if (!first && n <= kDirectSelect) return nth_in_place(scratch.data(), n, k);
    int shift = 0;
    while (((hi - lo) >> shift) >= kBins) ++shift;
    std::fill(hist, hist + kBins, 0u);
    auto count = [&](const float* p, int64_t len) {
      for (int64_t i = 0; i < len; ++i) {
        uint32_t key = key_of(p[i]);
        if (key >= lo && key <= hi) ++hist[(key - lo) >> shift];
      }
    };
    if (first) src.for_each_run(count); else count(scratch.data(), n);
    uint32_t b = 0;
    int64_t below = 0;
    while (below + static_cast<int64_t>(hist[b]) <= k) below += hist[b++];
    k -= below;
    uint32_t new_lo = lo + (b << shift);
    uint32_t new_hi = std::min<uint64_t>(hi, static_cast<uint64_t>(new_lo) + ((uint64_t{1} << shift) - 1));
    int64_t kept = 0;
    if (first) {
      scratch.resize(hist[b]);
      src.for_each_run([&](const float* p, int64_t len) {
        for (int64_t i = 0; i < len; ++i) {
          uint32_t key = key_of(p[i]);
          if (key >= new_lo && key <= new_hi) scratch[kept++] = p[i];
        }
      });
    } else {
      for (int64_t i = 0; i < n; ++i) {
        uint32_t key = key_of(scratch[i]);
        if (key >= new_lo && key <= new_hi) scratch[kept++] = scratch[i];
      }
    }
    lo = new_lo;
    hi = new_hi;
    n = kept;
    first = false;
  }
}

struct Contiguous {
  const float* p;
  int64_t n;
  int64_t size() const { return n; }
  template <class F>
  void for_each_run(F&& f) const { f(p, n); }
};

}  // namespace qreport::observers::detail
