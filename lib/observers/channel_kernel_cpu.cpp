// The fused per-channel kernel of the CPU path (see channel_kernel.h).
//
// Per channel, one streaming pass computes min, max and NaN presence and, for each wanted rank k, counts
// the values below and at two bounds [a, b] chosen from a small sample so that the k-th value very likely
// lies between them, while gathering the few values strictly inside. The k-th value is then a bound, or is
// selected among the gathered values. Only when the sample misjudged the bounds (a data-dependent, rare
// case; the result is exact either way) does a radix selection over the whole channel run.
//
// Why not kthvalue or a sort: both copy the channel to channel-first order and then select with O(M)
// random accesses; here every value is read once in the activation's own layout, four lanes at a time.
//
// The streaming passes are in channel_scan.cpp, the exact selection in channel_select.h; this file chooses
// the bounds, learns them across batches and reads the results.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "observers/channel_kernel.h"
#include "observers/channel_scan.h"
#include "observers/channel_select.h"

namespace qreport::observers {
namespace {

using detail::Channel;
using detail::kDirectSelect;
using detail::min_max;
using detail::nth_in_place;
using detail::radix_select;
using detail::Scan;
using detail::scan;
using detail::scan_runs;

// Learnt windows are kept for up to this many ranks per axis (the detectors ask for one).
constexpr int64_t kMaxWindowRanks = 4;
// The first learnt window's half width, as a fraction of the sample's margin: that margin covers the
// sampling error of a few thousand values, wider than the batch-to-batch change of a quantile of the
// whole channel; misses widen the window from there (mobilenet_v2 at batch 8: 30% less time in this
// kernel than starting at the full margin; a tenth of it missed too often).
constexpr double kFirstWindow = 0.25;

// Sample size that balances selecting in the sample against selecting among the values between the
// bounds (about M / sqrt(S) of them): S ~ M^(2/3), within [64, 8192].
int64_t sample_size(int64_t m) {
  double s = std::cbrt(static_cast<double>(m) * static_cast<double>(m));
  return std::clamp<int64_t>(static_cast<int64_t>(s), 64, 8192);
}

struct Scratch {
  std::vector<float> sample, radix;
  GrowingBuffer inside;
  float* inside_for(int64_t m) { return inside.get(m + detail::kScanSlack); }
};

// Bounds [a, b] that very likely hold the k-th value: order statistics of an evenly spaced sample around
// k's position, three standard deviations of a sample quantile apart (a miss only costs the fallback).
// half: the window's half width as a fraction of the channel, the start of a learnt window.
struct Bounds {
  float a, b;
  double half;
};
Bounds sample_bounds(const Channel& ch, int64_t k, std::vector<float>& sample) {
  const int64_t m = ch.size(), n = sample_size(m);
  sample.resize(n);
  // Runs of kLine consecutive values, evenly spaced over the channel and walked run by run (no division
  // per value). Longer runs would save cache misses but neighbouring pixels are correlated: with 16 the
  // bounds missed fifty times as often on mobilenet_v2.
  constexpr int64_t kLine = 4;
  const int64_t lines = n / kLine, step = m / lines;
  int64_t run = 0, off = 0, i = 0;
  for (int64_t l = 0; l < lines; ++l) {
    while (off >= ch.inner) {
      off -= ch.inner;
      ++run;
    }
    const float* p = ch.base + run * ch.stride;
    for (int64_t j = off; j < std::min(off + kLine, ch.inner); ++j) sample[i++] = p[j];
    off += step;
  }
  sample.resize(i);
  const int64_t taken = i;
  double p = (static_cast<double>(k) + 0.5) / static_cast<double>(m);
  double margin = 3.0 * std::sqrt(static_cast<double>(taken) * p * (1.0 - p)) + 1.0;
  auto lo_idx = static_cast<int64_t>(std::floor(p * taken - margin));
  auto hi_idx = static_cast<int64_t>(std::ceil(p * taken + margin));
  float a = -kInf, b = kInf;
  if (lo_idx >= 0) {
    std::nth_element(sample.begin(), sample.begin() + lo_idx, sample.end());
    a = sample[lo_idx];
  }
  if (hi_idx < taken) {
    std::nth_element(sample.begin() + std::max<int64_t>(lo_idx, 0), sample.begin() + hi_idx, sample.end());
    b = sample[hi_idx];
  }
  return {a, b, margin / static_cast<double>(taken)};
}

// Where rank k lies after a scan with bounds [a, b].
enum class Place { kA, kInside, kB, kMiss };
Place place_of(int64_t k, const Scan& c) {
  if (k >= c.lt_a && k < c.le_a) return Place::kA;
  if (k >= c.le_a && k < c.lt_b) return Place::kInside;
  if (k >= c.lt_b && k < c.le_b) return Place::kB;
  return Place::kMiss;
}

// One channel's learnt window for one rank (RankWindows entries).
struct Window {
  float* lo;
  float* hi;
  float* half;
};
Window window_of(RankWindows& w, int64_t r, int64_t channels, int64_t c) {
  const int64_t i = r * channels + c;
  return {&w.lo[i], &w.hi[i], &w.half[i]};
}

// The next window's half width after a scan that held the rank: a little narrower than a learnt one
// (so that about one batch in ten misses), or a fraction of the sample's margin after a sample.
double held_half(bool learnt, double half) { return learnt ? half - half / 16 : half * kFirstWindow; }

// The next batch's window around rank k, from this batch's scan with bounds [a, b] that held it: the
// values at ranks k -/+ d, selected among the inside values (partitioned around k - le_a when
// k_inside), or the bound itself where the rank falls on or beyond it.
void learn_window(const Window& w, const Scan& c, int64_t k, int64_t m, float a, float b, float* inside,
                  bool k_inside, double half) {
  const int64_t d = std::max<int64_t>(4, static_cast<int64_t>(half * static_cast<double>(m)));
  const int64_t p = k - c.le_a;  // k's position among the inside values, when there
  auto value_at = [&](int64_t j, bool below) {
    if (j < 0) return -kInf;
    if (j >= m) return kInf;
    if (j < c.le_a) return a;
    if (j >= c.lt_b) return b;
    const int64_t q = j - c.le_a;
    float* first = inside;
    float* last = inside + c.inside;
    if (k_inside) (below ? last : first) = inside + p + (below ? 0 : 1);  // the side of k that holds q
    std::nth_element(first, inside + q, last);
    return canonical(inside[q]);
  };
  *w.lo = value_at(k - d, true);
  *w.hi = value_at(k + d, false);
  *w.half = static_cast<float>(half);
}

// min, max (NaN when the channel holds a NaN) and the value at each rank of one channel.
void channel_stats(const Channel& ch, const std::vector<int64_t>& ranks, Scratch& s, float& mn, float& mx,
                   float* kth, int64_t kth_stride, const Window* windows) {
  const int64_t m = ch.size();
  bool nan = false;
  if (ranks.empty()) {
    min_max(ch, mn, mx, nan);
  } else if (m <= kDirectSelect) {
    s.radix.resize(m);
    int64_t j = 0;
    ch.for_each_run([&](const float* p, int64_t len) {
      std::copy(p, p + len, s.radix.begin() + j);
      j += len;
    });
    min_max(Channel{s.radix.data(), 1, m, m}, mn, mx, nan);
    // nth_element leaves a permutation, on which the next rank's selection is as valid.
    if (!nan)
      for (size_t r = 0; r < ranks.size(); ++r) kth[r * kth_stride] = nth_in_place(s.radix.data(), m, ranks[r]);
  } else {
    for (size_t r = 0; r < ranks.size() && !nan; ++r) {
      const int64_t k = ranks[r];
      const Window* w = windows ? &windows[r] : nullptr;
      // A learnt window first; the sample's bounds when there is none or it missed.
      const bool learnt = w && !std::isnan(*w->lo);
      Bounds bounds = learnt ? Bounds{*w->lo, *w->hi, *w->half} : sample_bounds(ch, k, s.sample);
      float* inside = s.inside_for(m);
      Scan c = scan(ch, bounds.a, bounds.b, inside);
      Place place = place_of(k, c);
      double half = held_half(learnt, bounds.half);
      if (learnt && !c.nan && place == Place::kMiss) {
        const double missed = bounds.half;
        bounds = sample_bounds(ch, k, s.sample);
        c = scan(ch, bounds.a, bounds.b, inside);
        place = place_of(k, c);
        half = std::min(0.5, std::max(2 * missed, bounds.half));  // missed: twice as wide
      }
      mn = c.mn;
      mx = c.mx;
      nan = c.nan;
      float& out = kth[r * kth_stride];
      if (nan) break;
      switch (place) {
        case Place::kA: out = canonical(bounds.a); break;
        case Place::kInside: out = nth_in_place(inside, c.inside, k - c.le_a); break;
        case Place::kB: out = canonical(bounds.b); break;
        case Place::kMiss: out = radix_select(ch, k, mn, mx, s.radix); break;  // the sample misjudged the bounds
      }
      if (w) {
        if (place == Place::kMiss)
          *w->lo = kNaN;  // draw a sample next time
        else
          learn_window(*w, c, k, m, bounds.a, bounds.b, inside, place == Place::kInside, half);
      }
    }
  }
  if (nan) {
    mn = mx = kNaN;
    for (size_t r = 0; r < ranks.size(); ++r) kth[r * kth_stride] = kNaN;
  }
}

// Runs shorter than this many values (a 16 KiB page's worth) are read in memory order, all channels
// together, rather than channel by channel: each channel's run then follows the last one's in memory,
// where a channel's own runs lie C * inner values apart and each starts with cache misses the
// prefetcher has not foreseen (mobilenet_v2's 14x14 and 7x7 layers at batch 8: 2-3 ns a value).
constexpr int64_t kInterleaveBelow = 4096;

// Memory-order scratch of one task: per channel its bounds, scan and a region for its inside values.
struct Interleaved {
  std::vector<Bounds> bounds;
  std::vector<Scan> scans;
  std::vector<char> learnt, overflow, redo;
  GrowingBuffer inside;
};

// channel_stats for channels [c0, c1) of an [outer, C, inner] tensor, scanned in memory order: the
// bounds of every channel first (learnt windows, or samples), then one pass over the runs in the order
// they lie in memory, then each channel's ranks from its counts and inside values. A channel whose window
// missed, or whose inside values outgrew their region, is done again by channel_stats (rare).
void channel_stats_interleaved(const float* data, int64_t outer, int64_t channels, int64_t inner, int64_t c0,
                               int64_t c1, const std::vector<int64_t>& ranks, ChannelBatchStats& out,
                               RankWindows* windows, Scratch& s, Interleaved& iv) {
  const int64_t n = c1 - c0, m = outer * inner;
  const int64_t nr = static_cast<int64_t>(ranks.size());
  // Room for a window's inside values with a wide margin, plus one run: a run is scanned whole before
  // its channel's count is checked.
  const int64_t room = std::max<int64_t>(kDirectSelect, m / 8) + inner;
  const int64_t region = room + detail::kScanSlack;
  float* inside = iv.inside.get(n * region);
  std::vector<char>& redo = iv.redo;  // 1: channel_stats does it again; 2: done (NaN)
  redo.assign(static_cast<size_t>(n), 0);
  iv.bounds.resize(n);
  iv.scans.resize(n);
  iv.learnt.resize(n);
  iv.overflow.resize(n);
  for (int64_t r = 0; r < std::max<int64_t>(nr, 1); ++r) {
    const int64_t k = nr ? ranks[r] : 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c = c0 + i;
      if (redo[i]) continue;
      const Window w = windows && nr ? window_of(*windows, r, channels, c) : Window{};  // none without ranks
      iv.learnt[i] = w.lo && !std::isnan(*w.lo);
      if (!nr)
        iv.bounds[i] = Bounds{kInf, -kInf, 0.0};  // min and max only: nothing between the bounds
      else if (iv.learnt[i])
        iv.bounds[i] = Bounds{*w.lo, *w.hi, *w.half};
      else
        iv.bounds[i] = sample_bounds(Channel{data + c * inner, outer, inner, channels * inner}, k, s.sample);
      iv.scans[i] = Scan{};
      iv.overflow[i] = 0;
    }
    for (int64_t o = 0; o < outer; ++o) {
      const float* row = data + (o * channels + c0) * inner;
      for (int64_t i = 0; i < n; ++i) {
        if (redo[i]) continue;
        Scan& sc = iv.scans[i];
        float* mine = inside + i * region;
        scan_runs(row + i * inner, inner, iv.bounds[i].a, iv.bounds[i].b, sc, mine);
        if (sc.inside > room - inner) {  // keep counting; the inside values are lost
          iv.overflow[i] = 1;
          sc.inside = 0;
        }
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      if (redo[i]) continue;
      const int64_t c = c0 + i;
      const Scan& sc = iv.scans[i];
      if (sc.nan) {
        out.min[c] = out.max[c] = kNaN;
        for (int64_t q = 0; q < nr; ++q) out.kth[q * channels + c] = kNaN;
        redo[i] = 2;
        continue;
      }
      out.min[c] = sc.mn;
      out.max[c] = sc.mx;
      if (!nr) continue;
      const Bounds& b = iv.bounds[i];
      const Place place = place_of(k, sc);
      if (place == Place::kMiss || (place == Place::kInside && iv.overflow[i])) {
        redo[i] = 1;
        continue;
      }
      float* mine = inside + i * region;
      float& kth = out.kth[r * channels + c];
      kth = place == Place::kA ? canonical(b.a)
            : place == Place::kB ? canonical(b.b)
                                 : nth_in_place(mine, sc.inside, k - sc.le_a);
      if (windows && nr <= kMaxWindowRanks) {
        const Window w = window_of(*windows, r, channels, c);
        if (iv.overflow[i])
          *w.lo = kNaN;  // its inside values are lost: draw a sample next time
        else
          learn_window(w, sc, k, m, b.a, b.b, mine, place == Place::kInside, held_half(iv.learnt[i], b.half));
      }
    }
  }
  Window w[kMaxWindowRanks];
  const bool learn = windows && nr <= kMaxWindowRanks;
  for (int64_t i = 0; i < n; ++i) {
    if (redo[i] != 1) continue;
    const int64_t c = c0 + i;
    for (int64_t r = 0; learn && r < nr; ++r) {
      w[r] = window_of(*windows, r, channels, c);
      *w[r].lo = kNaN;  // channel_stats then draws a sample, as after any miss
    }
    channel_stats(Channel{data + c * inner, outer, inner, channels * inner}, ranks, s, out.min[c], out.max[c],
                  out.kth.data() + c, channels, learn ? w : nullptr);
  }
}

}  // namespace

void RankWindows::reset(size_t n) {
  lo.assign(n, kNaN);
  hi.assign(n, kNaN);
  half.assign(n, 0.0f);
}

void channel_stats_cpu(const float* data, int64_t outer, int64_t channels, int64_t inner,
                       const std::vector<int64_t>& ranks, ChannelBatchStats& out, RankWindows* windows) {
  const int64_t nr = static_cast<int64_t>(ranks.size());
  out.min.resize(channels);
  out.max.resize(channels);
  out.kth.resize(channels * nr);
  const int64_t m = outer * inner;
  const int64_t grain = std::max<int64_t>(1, kParallelGrainValues / std::max<int64_t>(m, 1));
  const bool interleave = outer > 1 && inner < kInterleaveBelow && (ranks.empty() || m > kDirectSelect);
  at::parallel_for(0, channels, grain, [&](int64_t begin, int64_t end) {
    thread_local Scratch scratch;
    if (interleave) {
      thread_local Interleaved iv;
      channel_stats_interleaved(data, outer, channels, inner, begin, end, ranks, out, windows, scratch, iv);
      return;
    }
    Window w[kMaxWindowRanks];
    const bool learn = windows && nr <= kMaxWindowRanks;
    for (int64_t c = begin; c < end; ++c) {
      for (int64_t r = 0; learn && r < nr; ++r) w[r] = window_of(*windows, r, channels, c);
      channel_stats(Channel{data + c * inner, outer, inner, channels * inner}, ranks, scratch, out.min[c],
                    out.max[c], out.kth.data() + c, channels, learn ? w : nullptr);
    }
  });
}

std::pair<float, float> tensor_range_cpu(const float* data, int64_t n, std::vector<RangePart>& parts) {
  const size_t threads = static_cast<size_t>(at::get_num_threads());
  if (parts.size() < threads) parts.resize(threads);
  for (size_t t = 0; t < threads; ++t) parts[t].used = false;
  at::parallel_for(0, n, kParallelGrainValues, [&](int64_t begin, int64_t end) {
    RangePart& p = parts[static_cast<size_t>(at::get_thread_num())];
    float mn, mx;
    bool nan;
    min_max(Channel{data + begin, 1, end - begin, end - begin}, mn, mx, nan);
    if (!p.used) {
      p = RangePart{mn, mx, nan, true};
    } else {
      p.mn = std::min(p.mn, mn);
      p.mx = std::max(p.mx, mx);
      p.nan |= nan;
    }
  });
  float mn = kInf, mx = -kInf;
  for (size_t t = 0; t < threads; ++t) {
    if (!parts[t].used) continue;
    if (parts[t].nan) return {kNaN, kNaN};
    mn = std::min(mn, parts[t].mn);
    mx = std::max(mx, parts[t].mx);
  }
  return {mn, mx};
}

}  // namespace qreport::observers
