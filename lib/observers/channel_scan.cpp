// The streaming passes of the CPU per-channel kernel (see channel_scan.h): one read of each value, four
// (SSE2) or eight (AVX2) lanes at a time, the counters and extremes kept in registers for a whole run.
#include "observers/channel_scan.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace qreport::observers::detail {
namespace {

// Folds the lanes a vector pass left (stored to arrays: the four counters, the extremes) into c.
template <int N>
void add_lanes(Scan& c, const int32_t (&l1)[N], const int32_t (&l2)[N], const int32_t (&l3)[N], const int32_t (&l4)[N],
               const float (&lmin)[N], const float (&lmax)[N]) {
  for (int l = 0; l < N; ++l) {
    c.lt_a += l1[l];
    c.le_a += l2[l];
    c.lt_b += l3[l];
    c.le_b += l4[l];
    c.mn = lmin[l] < c.mn ? lmin[l] : c.mn;
    c.mx = lmax[l] > c.mx ? lmax[l] : c.mx;
  }
}

// One contiguous run; the vector state lives in registers for the whole run.
void scan_run(const float* p, int64_t len, float a, float b, Scan& c, float* inside) {
  int64_t i = 0;
  float* out = inside + c.inside;
#if defined(__SSE2__)
  const __m128 va = _mm_set1_ps(a), vb = _mm_set1_ps(b);
  __m128 vmin = _mm_set1_ps(kInf), vmax = _mm_set1_ps(-kInf), vnan = _mm_setzero_ps();
  // Lane counters: a true compare is all ones (-1), so subtracting the mask counts it.
  __m128i n1 = _mm_setzero_si128(), n2 = n1, n3 = n1, n4 = n1;
  for (; i + 4 <= len; i += 4) {
    __m128 v = _mm_loadu_ps(p + i);
    vmin = _mm_min_ps(v, vmin);  // a NaN in v yields vmin, so NaN is tracked separately
    vmax = _mm_max_ps(v, vmax);
    vnan = _mm_or_ps(vnan, _mm_cmpunord_ps(v, v));
    __m128 gt_a = _mm_cmpgt_ps(v, va), lt_b = _mm_cmplt_ps(v, vb);
    n1 = _mm_sub_epi32(n1, _mm_castps_si128(_mm_cmplt_ps(v, va)));
    n2 = _mm_sub_epi32(n2, _mm_castps_si128(_mm_cmple_ps(v, va)));
    n3 = _mm_sub_epi32(n3, _mm_castps_si128(lt_b));
    n4 = _mm_sub_epi32(n4, _mm_castps_si128(_mm_cmple_ps(v, vb)));
    if (int in = _mm_movemask_ps(_mm_and_ps(gt_a, lt_b))) {  // rare: a few percent of the values
      for (int l = 0; l < 4; ++l)
        if (in & (1 << l)) *out++ = p[i + l];
    }
  }
  alignas(16) int32_t l1[4], l2[4], l3[4], l4[4];
  alignas(16) float lmin[4], lmax[4];
  _mm_store_si128(reinterpret_cast<__m128i*>(l1), n1);
  _mm_store_si128(reinterpret_cast<__m128i*>(l2), n2);
  _mm_store_si128(reinterpret_cast<__m128i*>(l3), n3);
  _mm_store_si128(reinterpret_cast<__m128i*>(l4), n4);
  _mm_store_ps(lmin, vmin);
  _mm_store_ps(lmax, vmax);
  add_lanes(c, l1, l2, l3, l4, lmin, lmax);
  c.nan |= _mm_movemask_ps(vnan) != 0;
#endif
  for (; i < len; ++i) {
    float v = p[i];
    c.mn = v < c.mn ? v : c.mn;
    c.mx = v > c.mx ? v : c.mx;
    c.nan |= v != v;
    c.lt_a += v < a;
    c.le_a += v <= a;
    c.lt_b += v < b;
    c.le_b += v <= b;
    if (v > a && v < b) *out++ = v;
  }
  c.inside = out - inside;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define QREPORT_HAVE_AVX2_SCAN 1
// For each 8-bit mask, the permutation that moves the lanes whose bit is set to the front, in order.
struct CompressTable {
  alignas(32) int32_t lanes[256][8];
  CompressTable() : lanes{} {
    for (int mask = 0; mask < 256; ++mask) {
      int k = 0;
      for (int l = 0; l < 8; ++l)
        if (mask & (1 << l)) lanes[mask][k++] = l;
    }
  }
};
const CompressTable kCompress;

// The same pass eight lanes wide, compiled for AVX2 whatever the build's -march; used only where the CPU
// has AVX2 (checked once at run time).
__attribute__((target("avx2"))) void scan_run_avx2(const float* p, int64_t len, float a, float b, Scan& c,
                                                   float* inside) {
  int64_t i = 0;
  float* out = inside + c.inside;
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  __m256 vmin = _mm256_set1_ps(kInf), vmax = _mm256_set1_ps(-kInf), vnan = _mm256_setzero_ps();
  __m256i n1 = _mm256_setzero_si256(), n2 = n1, n3 = n1, n4 = n1;
  for (; i + 8 <= len; i += 8) {
    __m256 v = _mm256_loadu_ps(p + i);
    vmin = _mm256_min_ps(v, vmin);
    vmax = _mm256_max_ps(v, vmax);
    vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    __m256 gt_a = _mm256_cmp_ps(v, va, _CMP_GT_OQ), lt_b = _mm256_cmp_ps(v, vb, _CMP_LT_OQ);
    n1 = _mm256_sub_epi32(n1, _mm256_castps_si256(_mm256_cmp_ps(v, va, _CMP_LT_OQ)));
    n2 = _mm256_sub_epi32(n2, _mm256_castps_si256(_mm256_cmp_ps(v, va, _CMP_LE_OQ)));
    n3 = _mm256_sub_epi32(n3, _mm256_castps_si256(lt_b));
    n4 = _mm256_sub_epi32(n4, _mm256_castps_si256(_mm256_cmp_ps(v, vb, _CMP_LE_OQ)));
    // The lanes inside, moved to the front and stored whole; out advances by their count. No branch:
    // whether any of eight values falls inside is close to random, and a branch per lane was the
    // costliest part of this loop (mobilenet_v2).
    const int in = _mm256_movemask_ps(_mm256_and_ps(gt_a, lt_b));
    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(v, _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompress.lanes[in]))));
    out += __builtin_popcount(static_cast<unsigned>(in));
  }
  alignas(32) int32_t l1[8], l2[8], l3[8], l4[8];
  alignas(32) float lmin[8], lmax[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(l1), n1);
  _mm256_store_si256(reinterpret_cast<__m256i*>(l2), n2);
  _mm256_store_si256(reinterpret_cast<__m256i*>(l3), n3);
  _mm256_store_si256(reinterpret_cast<__m256i*>(l4), n4);
  _mm256_store_ps(lmin, vmin);
  _mm256_store_ps(lmax, vmax);
  add_lanes(c, l1, l2, l3, l4, lmin, lmax);
  c.nan |= _mm256_movemask_ps(vnan) != 0;
  c.inside = out - inside;
  scan_run(p + i, len - i, a, b, c, inside);  // the tail
}
#endif

}  // namespace

void min_max(const Channel& ch, float& mn, float& mx, bool& nan) {
#if defined(__SSE2__)
  __m128 vmin = _mm_set1_ps(kInf), vmax = _mm_set1_ps(-kInf), vnan = _mm_setzero_ps();
  float smin = kInf, smax = -kInf;
  bool snan = false;
  ch.for_each_run([&](const float* p, int64_t len) {
    int64_t i = 0;
    for (; i + 4 <= len; i += 4) {
      __m128 v = _mm_loadu_ps(p + i);
      vmin = _mm_min_ps(v, vmin);  // a NaN in v yields vmin, so NaN is tracked separately
      vmax = _mm_max_ps(v, vmax);
      vnan = _mm_or_ps(vnan, _mm_cmpunord_ps(v, v));
    }
    for (; i < len; ++i) {
      float v = p[i];
      smin = v < smin ? v : smin;
      smax = v > smax ? v : smax;
      snan |= v != v;
    }
  });
  alignas(16) float lmin[4], lmax[4];
  _mm_store_ps(lmin, vmin);
  _mm_store_ps(lmax, vmax);
  for (int l = 0; l < 4; ++l) {
    smin = lmin[l] < smin ? lmin[l] : smin;
    smax = lmax[l] > smax ? lmax[l] : smax;
  }
  mn = smin;
  mx = smax;
  nan = snan || _mm_movemask_ps(vnan) != 0;
#else
  mn = kInf;
  mx = -kInf;
  nan = false;
  ch.for_each_run([&](const float* p, int64_t len) {
    for (int64_t i = 0; i < len; ++i) {
      float v = p[i];
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
      nan |= v != v;
    }
  });
#endif
}

void scan_runs(const float* p, int64_t len, float a, float b, Scan& c, float* inside) {
#if defined(QREPORT_HAVE_AVX2_SCAN)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return scan_run_avx2(p, len, a, b, c, inside);
#endif
  scan_run(p, len, a, b, c, inside);
}

Scan scan(const Channel& ch, float a, float b, float* inside) {
  Scan c;
  ch.for_each_run([&](const float* p, int64_t len) { scan_runs(p, len, a, b, c, inside); });
  return c;
}

}  // namespace qreport::observers::detail
