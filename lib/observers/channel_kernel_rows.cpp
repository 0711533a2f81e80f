// The per-channel kernel for activations whose channels are innermost: a Linear's input [rows, C], a
// transformer's [B, T, F] seen as [B * T, F]. There each channel is a column with stride C, so reading
// channels one by one (or copying them channel-first) costs a cache miss per value, while a row holds
// many channels side by side. This kernel walks the rows once and keeps, per channel, its min, max and the
// few values beyond the wanted rank: for the reference percentile 0.975 of a few hundred tokens that is a
// dozen values, and almost every value falls below the kept ones, which one comparison per eight channels
// tells. Exact, and equal bit for bit to channel_stats_cpu (same comparisons, zeros canonical). Where asked,
// the same read sums the LLM.int8() moments (ChannelMoments), in the order to_channels_first_moments does.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "observers/channel_kernel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace qreport::observers {
namespace {

constexpr int64_t kMaxKept = 32;  // beyond this the insertion costs more than a channel-first copy
constexpr size_t kMaxRanks = 4;

// The k-th smallest of m values is the (m - k)-th largest: keep whichever tail is shorter.
struct Tail {
  int64_t kept;
  bool top;  // keep the largest values (else the smallest)
};
Tail tail_of(int64_t k, int64_t m) { return m - k <= k + 1 ? Tail{m - k, true} : Tail{k + 1, false}; }

// Columns [c0, c1) one at a time; also the tail of the AVX2 path.
void rows_scalar(const float* data, int64_t rows, int64_t channels, int64_t c0, int64_t c1,
                 const std::vector<Tail>& tails, ChannelBatchStats& out, ChannelMoments* moments) {
  float buf[kMaxRanks][kMaxKept];
  for (int64_t c = c0; c < c1; ++c) {
    float mn = kInf, mx = -kInf;
    bool nan = false;
    float a1 = 0, a2 = 0, a3 = 0, a4 = 0, an = 0;  // this block's moments (channel_kernel.h)
    for (size_t t = 0; t < tails.size(); ++t) std::fill(buf[t], buf[t] + tails[t].kept, tails[t].top ? -kInf : kInf);
    for (int64_t r = 0; r < rows; ++r) {
      const float v = data[r * channels + c];
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
      nan |= v != v;
      if (moments) {
        const float v2 = v * v;
        a1 += v;
        a2 += v2;
        a3 += v2 * v;
        a4 += v2 * v2;
        an += (v >= kOutlierMagnitude || v <= -kOutlierMagnitude) ? 1.0f : 0.0f;
        if ((r + 1) % kMomentBlock == 0 || r + 1 == rows) {
          flush_moments(*moments, c, a1, a2, a3, a4, an);
          a1 = a2 = a3 = a4 = an = 0;
        }
      }
      for (size_t t = 0; t < tails.size(); ++t) {
        float* b = buf[t];
        const int64_t n = tails[t].kept;
        if (tails[t].top ? v > b[n - 1] : v < b[n - 1]) {
          float x = v;  // insert into the sorted tail, dropping its last value
          for (int64_t j = 0; j < n; ++j) {
            const bool better = tails[t].top ? x > b[j] : x < b[j];
            if (better) std::swap(x, b[j]);
          }
        }
      }
    }
    out.min[c] = nan ? kNaN : mn;
    out.max[c] = nan ? kNaN : mx;
    for (size_t t = 0; t < tails.size(); ++t)
      out.kth[t * channels + c] = nan ? kNaN : canonical(buf[t][tails[t].kept - 1]);
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define QREPORT_HAVE_AVX2_ROWS 1
// Eight columns' float32 block sums (channel_kernel.h) into their float64 sums, then zeroed.
__attribute__((target("avx2"))) void flush_lanes(ChannelMoments& m, int64_t c, __m256& m1, __m256& m2, __m256& m3,
                                                 __m256& m4, __m256& n) {
  alignas(32) float lanes[5][8];
  _mm256_store_ps(lanes[0], m1);
  _mm256_store_ps(lanes[1], m2);
  _mm256_store_ps(lanes[2], m3);
  _mm256_store_ps(lanes[3], m4);
  _mm256_store_ps(lanes[4], n);
  for (int l = 0; l < 8; ++l) flush_moments(m, c + l, lanes[0][l], lanes[1][l], lanes[2][l], lanes[3][l], lanes[4][l]);
  m1 = m2 = m3 = m4 = n = _mm256_setzero_ps();
}

// Eight columns per step, compiled for AVX2 whatever the build's -march; used where the CPU has it.
__attribute__((target("avx2"))) void rows_avx2(const float* data, int64_t rows, int64_t channels, int64_t c0,
                                               int64_t c1, const std::vector<Tail>& tails, ChannelBatchStats& out,
                                               ChannelMoments* moments) {
  // Blocks of kGroups groups of eight columns: each row then contributes whole cache lines, read in
  // order, while the block's state (min, max, NaN and the kept tails) stays in L1.
  constexpr int64_t kGroups = 8;
  struct alignas(32) State {
    __m256 mn, mx, nan;
    __m256 m1, m2, m3, m4, mn6;  // this block's moments and count of |x| >= 6 (channel_kernel.h)
    __m256 tail[kMaxRanks][kMaxKept];
  };
  static thread_local State state[kGroups];
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), six = _mm256_set1_ps(kOutlierMagnitude);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  int64_t c = c0;
  while (c + 8 <= c1) {
    const int64_t groups = std::min<int64_t>(kGroups, (c1 - c) / 8);
    for (int64_t g = 0; g < groups; ++g) {
      State& s = state[g];
      s.mn = _mm256_set1_ps(kInf);
      s.mx = _mm256_set1_ps(-kInf);
      s.nan = _mm256_setzero_ps();
      s.m1 = s.m2 = s.m3 = s.m4 = s.mn6 = zero;
      for (size_t t = 0; t < tails.size(); ++t)
        for (int64_t j = 0; j < tails[t].kept; ++j) s.tail[t][j] = _mm256_set1_ps(tails[t].top ? -kInf : kInf);
    }
    const float* p = data + c;
    for (int64_t r = 0; r < rows; ++r, p += channels) {
      for (int64_t g = 0; g < groups; ++g) {
        State& s = state[g];
        const __m256 v = _mm256_loadu_ps(p + 8 * g);
        s.mn = _mm256_min_ps(v, s.mn);  // the scalar path's v < mn ? v : mn, lane by lane
        s.mx = _mm256_max_ps(v, s.mx);
        s.nan = _mm256_or_ps(s.nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        if (moments) {  // the scalar path's operations, lane by lane (no fused multiply-add)
          const __m256 v2 = _mm256_mul_ps(v, v);
          s.m1 = _mm256_add_ps(s.m1, v);
          s.m2 = _mm256_add_ps(s.m2, v2);
          s.m3 = _mm256_add_ps(s.m3, _mm256_mul_ps(v2, v));
          s.m4 = _mm256_add_ps(s.m4, _mm256_mul_ps(v2, v2));
          const __m256 big = _mm256_cmp_ps(_mm256_and_ps(v, abs_mask), six, _CMP_GE_OQ);
          s.mn6 = _mm256_add_ps(s.mn6, _mm256_and_ps(big, one));
        }
        for (size_t t = 0; t < tails.size(); ++t) {
          __m256* b = s.tail[t];
          const int64_t n = tails[t].kept;
          const __m256 beyond = tails[t].top ? _mm256_cmp_ps(v, b[n - 1], _CMP_GT_OQ)
                                             : _mm256_cmp_ps(v, b[n - 1], _CMP_LT_OQ);
          if (!_mm256_movemask_ps(beyond)) continue;  // the common case: below every kept value
          // Compare-exchange down the sorted tail. max/min keep the pair's values (a NaN lane is
          // overwritten at the end, and -0.0/+0.0 compare equal and come out as +0.0).
          __m256 x = v;
          if (tails[t].top) {
            for (int64_t j = 0; j < n; ++j) {
              const __m256 hi = _mm256_max_ps(b[j], x);
              x = _mm256_min_ps(b[j], x);
              b[j] = hi;
            }
          } else {
            for (int64_t j = 0; j < n; ++j) {
              const __m256 lo = _mm256_min_ps(b[j], x);
              x = _mm256_max_ps(b[j], x);
              b[j] = lo;
            }
          }
        }
      }
      if (moments && ((r + 1) % kMomentBlock == 0 || r + 1 == rows))  // the block's sums into float64
        for (int64_t g = 0; g < groups; ++g) {
          State& s = state[g];
          flush_lanes(*moments, c + 8 * g, s.m1, s.m2, s.m3, s.m4, s.mn6);
        }
    }
    const __m256 qnan = _mm256_set1_ps(kNaN);
    for (int64_t g = 0; g < groups; ++g, c += 8) {
      const State& s = state[g];
      const __m256 isnan = _mm256_cmp_ps(s.nan, zero, _CMP_NEQ_UQ);  // all-ones lanes
      _mm256_storeu_ps(out.min.data() + c, _mm256_blendv_ps(s.mn, qnan, isnan));
      _mm256_storeu_ps(out.max.data() + c, _mm256_blendv_ps(s.mx, qnan, isnan));
      for (size_t t = 0; t < tails.size(); ++t) {
        const __m256 kth = _mm256_add_ps(s.tail[t][tails[t].kept - 1], zero);  // -0.0 + 0.0 = +0.0
        _mm256_storeu_ps(out.kth.data() + t * channels + c, _mm256_blendv_ps(kth, qnan, isnan));
      }
    }
  }
  rows_scalar(data, rows, channels, c, c1, tails, out, moments);
}
#endif

}  // namespace

bool rows_kernel_applies(int64_t rows, const std::vector<int64_t>& ranks) {
  if (ranks.size() > kMaxRanks) return false;
  for (int64_t k : ranks)
    if (tail_of(k, rows).kept > kMaxKept) return false;
  return true;
}

void channel_stats_rows_cpu(const float* data, int64_t rows, int64_t channels, const std::vector<int64_t>& ranks,
                            ChannelBatchStats& out, ChannelMoments* moments) {
  if (moments) moments->resize(channels);
  out.min.resize(channels);
  out.max.resize(channels);
  out.kth.resize(channels * static_cast<int64_t>(ranks.size()));
  std::vector<Tail> tails;
  for (int64_t k : ranks) tails.push_back(tail_of(k, rows));
  // Tasks of whole groups of eight columns.
  const int64_t groups = (channels + 7) / 8;
  const int64_t grain = std::max<int64_t>(1, kParallelGrainValues / std::max<int64_t>(rows * 8, 1));
  at::parallel_for(0, groups, grain, [&](int64_t g0, int64_t g1) {
    const int64_t c0 = g0 * 8, c1 = std::min(channels, g1 * 8);
#if defined(QREPORT_HAVE_AVX2_ROWS)
    static const bool avx2 = __builtin_cpu_supports("avx2");
    if (avx2) return rows_avx2(data, rows, channels, c0, c1, tails, out, moments);
#endif
    rows_scalar(data, rows, channels, c0, c1, tails, out, moments);
  });
}

}  // namespace qreport::observers
