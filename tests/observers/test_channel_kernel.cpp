// The fused CPU kernel (exact order statistics without sorting) against ATen's kthvalue/amin/amax, on
// each of its paths: direct selection, sample bounds, ties at the bounds, and the radix fallback.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "observers/channel_kernel.h"
#include "observers/stat_observers.h"
#include "test_support.h"

using namespace qreport::observers;

namespace {

// Runs the kernel on x viewed as [outer, C, inner] around ch_axis and checks every channel against ATen.
void check_ranks_against_aten(const at::Tensor& x, int ch_axis, const std::vector<float>& qs,
                              RankWindows* windows = nullptr) {
  at::Tensor xc = x.contiguous();
  int64_t c = xc.size(ch_axis), outer = 1, inner = 1;
  for (int64_t d = 0; d < ch_axis; ++d) outer *= xc.size(d);
  for (int64_t d = ch_axis + 1; d < xc.dim(); ++d) inner *= xc.size(d);
  const int64_t m = outer * inner;
  std::vector<int64_t> ranks;
  for (float q : qs) ranks.push_back(quantile_lower_rank(q, m));
  ChannelBatchStats out;
  if (windows && windows->lo.size() != ranks.size() * c) windows->reset(ranks.size() * c);
  channel_stats_cpu(xc.data_ptr<float>(), outer, c, inner, ranks, out, windows);
  at::Tensor rows = channels_first_2d(xc, ch_axis).contiguous();
  for (int64_t ch = 0; ch < c; ++ch) {
    at::Tensor row = rows[ch];
    bool nan = at::isnan(row).any().item<bool>();
    CAPTURE(ch);
    if (nan) {
      CHECK(std::isnan(out.min[ch]));
      CHECK(std::isnan(out.max[ch]));
      for (size_t r = 0; r < ranks.size(); ++r) CHECK(std::isnan(out.kth[r * c + ch]));
      continue;
    }
    CHECK(out.min[ch] == row.min().item<float>());
    CHECK(out.max[ch] == row.max().item<float>());
    for (size_t r = 0; r < ranks.size(); ++r) {
      float expected = std::get<0>(at::kthvalue(row, ranks[r] + 1)).item<float>();
      float got = out.kth[r * c + ch];
      CAPTURE(ranks[r]);
      CHECK(got == expected);
      if (expected == 0.0f) CHECK(!std::signbit(got));  // zeros come back as +0.0
    }
  }
}

// All ranks in one call, then each alone: a single rank near either end takes the tail selection.
void check_against_aten(const at::Tensor& x, int ch_axis, const std::vector<float>& qs) {
  check_ranks_against_aten(x, ch_axis, qs);
  if (qs.size() > 1)
    for (float q : qs) check_ranks_against_aten(x, ch_axis, {q});
}

}  // namespace

TEST_CASE("small channels are selected directly") {
  at::manual_seed(1);
  check_against_aten(at::randn({2, 5, 7, 3}), 1, {0.9f, 0.95f, 0.5f, 0.0f, 1.0f});
}

TEST_CASE("large channels: sample bounds, one pass") {
  at::manual_seed(2);
  check_against_aten(at::randn({8, 6, 40, 40}), 1, {0.95f, 0.975f});
  check_against_aten(at::randn({3, 4, 5000}).exp(), 1, {0.9f});  // heavy tail
}

TEST_CASE("learnt windows: every batch exact whether the last batch's window holds or misses") {
  at::manual_seed(7);
  RankWindows w;
  const std::vector<float> qs{0.975f, 0.5f};
  at::Tensor base = at::randn({4, 6, 20, 20});
  check_ranks_against_aten(base, 1, qs, &w);  // no window yet: sample bounds
  for (size_t i = 0; i < w.lo.size(); ++i) CHECK(!std::isnan(w.lo[i]));  // ... and now a window each
  check_ranks_against_aten(base + 0.01 * at::randn_like(base), 1, qs, &w);  // alike: windows hold
  check_ranks_against_aten(base + 3.0, 1, qs, &w);                          // shifted up: all miss high
  check_ranks_against_aten(base * 0.01, 1, qs, &w);                         // narrower: miss low and high
  check_ranks_against_aten(base.sub(1.0).clamp_min(0), 1, qs, &w);          // ReLU zeros: ties at a bound
  check_ranks_against_aten(at::zeros({4, 6, 20, 20}), 1, qs, &w);           // constant channels
  at::Tensor nan = base.clone();
  nan.index_put_({1, 2, 3, 4}, std::numeric_limits<float>::quiet_NaN());
  check_ranks_against_aten(nan, 1, qs, &w);                                 // one channel NaN
  check_ranks_against_aten(at::randn({7, 6, 20, 20}) * 5, 1, qs, &w);       // more values per channel
  check_ranks_against_aten(at::randn({1, 6, 20, 20}).exp(), 1, {0.975f}, &w);  // one rank: windows reset
}

TEST_CASE("memory-order scan (batch > 1, short runs): a window holding most values, min/max only") {
  at::manual_seed(8);
  at::Tensor x = at::randn({8, 5, 7, 7});  // runs of 49 values, 392 per channel
  RankWindows w;
  w.reset(5);
  std::fill(w.lo.begin(), w.lo.end(), -10.0f);  // every value between the bounds: more inside values
  std::fill(w.hi.begin(), w.hi.end(), 10.0f);   // than their region holds, so each channel is done again
  std::fill(w.half.begin(), w.half.end(), 0.5f);
  check_ranks_against_aten(x, 1, {0.975f}, &w);
  for (size_t i = 0; i < w.lo.size(); ++i) CHECK(w.lo[i] > -10.0f);  // ... and learns a window of its own
  check_ranks_against_aten(x * 2, 1, {0.975f}, &w);
  ChannelBatchStats out;
  at::Tensor y = at::randn({3, 4, 6, 5});
  channel_stats_cpu(y.data_ptr<float>(), 3, 4, 30, {}, out);  // no ranks: min and max in memory order
  for (int64_t c = 0; c < 4; ++c) {
    CHECK(out.min[c] == y.select(1, c).min().item<float>());
    CHECK(out.max[c] == y.select(1, c).max().item<float>());
  }
}

TEST_CASE("many ties at the bounds: ReLU zeros and saturated values") {
  at::manual_seed(3);
  at::Tensor relu = at::randn({4, 5, 30, 30}).sub(1.8).clamp_min(0);  // most values exactly 0
  check_against_aten(relu, 1, {0.95f, 0.5f});
  at::Tensor relu6 = at::randn({4, 5, 30, 30}).mul(6).clamp(0, 6);  // many exactly 6
  check_against_aten(relu6, 1, {0.95f, 0.99f});
  check_against_aten(at::zeros({2, 3, 600}), 1, {0.95f});  // constant channels
}

TEST_CASE("signed zeros, infinities and NaN") {
  at::Tensor x = at::randn({2, 4, 700});
  x.index_put_({0, 0}, -0.0);  // channel 0 half -0.0
  x.index_put_({at::indexing::Slice(), 1, at::indexing::Slice(0, 50)}, std::numeric_limits<float>::infinity());
  x.index_put_({1, 2, 7}, std::numeric_limits<float>::quiet_NaN());
  x.index_put_({at::indexing::Slice(), 3, at::indexing::Slice(0, 690)}, -std::numeric_limits<float>::infinity());
  check_against_aten(x, 1, {0.95f, 0.4f, 0.3f});
}

TEST_CASE("a sample that misjudges the bounds falls back to radix selection") {
  // The sample reads runs of 4 values every `step` values; make exactly those huge so that the sample's
  // bounds lie far above the channel's 95th percentile.
  const int64_t m = 10000;
  at::Tensor x = at::rand({1, 1, m});
  const int64_t n = std::clamp<int64_t>(static_cast<int64_t>(std::cbrt(double(m) * m)), 64, 8192);
  const int64_t step = m / (n / 4);
  auto acc = x.accessor<float, 3>();
  for (int64_t j = 0; j < m; ++j)
    if (j % step < 4) acc[0][0][j] = 1e9f;
  check_against_aten(x, 1, {0.95f});
}

TEST_CASE("tail selection: ranks near either end, data in the worst order for its buffer") {
  at::manual_seed(6);
  at::Tensor ramp = at::arange(0, 20000, at::kFloat).reshape({1, 2, 10000});  // every value enters the top buffer
  check_against_aten(ramp, 1, {0.975f, 0.99f});
  check_against_aten(ramp.flip(2).contiguous(), 1, {0.025f, 0.01f});  // ... and the bottom one
  check_against_aten(at::randn({3, 7, 11, 13}), 1, {0.975f, 0.02f, 0.9f});
  check_against_aten(at::randint(0, 3, {4, 3, 64}).to(at::kFloat), 1, {0.975f, 0.01f});  // ties at the threshold
  at::Tensor x = at::full({1, 2, 400}, -std::numeric_limits<float>::infinity());
  x.index_put_({0, 0, at::indexing::Slice(0, 3)}, 1.0);  // fewer finite values than the tail holds
  x.index_put_({0, 1, at::indexing::Slice(0, 397)}, std::numeric_limits<float>::infinity());
  check_against_aten(x, 1, {0.975f, 0.01f});
}

TEST_CASE("channel axis last and outer > 1 (Linear-like [N, C])") {
  at::manual_seed(4);
  check_against_aten(at::randn({300, 6}), 1, {0.95f});
  check_against_aten(at::randn({5, 4, 3}), 2, {0.9f});
}

TEST_CASE("select_kth is exact for random data, ties and wide ranges") {
  std::vector<float> scratch;
  at::manual_seed(5);
  for (int trial = 0; trial < 20; ++trial) {
    int64_t n = 1 + trial * 997;
    at::Tensor t = trial % 3 == 0 ? at::randint(0, 5, {n}).to(at::kFloat)
                                  : at::randn({n}) * std::pow(10.0f, static_cast<float>(trial % 7 * 5 - 15));
    std::vector<float> v(t.data_ptr<float>(), t.data_ptr<float>() + n);
    std::vector<float> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t k : {int64_t{0}, n / 3, (n * 19) / 20, n - 1}) {
      CAPTURE(n);
      CAPTURE(k);
      CHECK(select_kth(v.data(), n, k, scratch) == sorted[k]);
    }
  }
}

namespace {

// The device path is what --device cuda runs; on the CPU it can be driven through the observers'
// observe() directly. Same float32 arithmetic, so the summaries must be equal to the bit.
bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
bool same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) { return same(x, y); });
}

void check_cpu_path_equals_device_path(const std::vector<at::Tensor>& batches, float q) {
  ObservationPoint point;
  point.want_range();
  point.want_minmax(1);
  point.want_percentile(1, q);
  RangeObserver range;
  MinMaxObserver minmax(1);
  PercentileObserver pct(1, q);
  for (const auto& x : batches) {
    point.observe(x);
    range.observe(x);
    minmax.observe(x);
    pct.observe(x);
  }
  point.finalize();
  RangeSummary r = range.finalize();
  CHECK(same(point.range()->avg_range, r.avg_range));
  CHECK(same(point.range()->epoch_min, r.epoch_min));
  CHECK(same(point.range()->epoch_max, r.epoch_max));
  MinMaxSummary mm = minmax.finalize();
  CHECK(same(point.minmax(1)->min, mm.min));
  CHECK(same(point.minmax(1)->max, mm.max));
  PercentileSummary p = pct.finalize();
  CHECK(same(point.percentile(1, q)->avg_ratio, p.avg_ratio));
  CHECK(point.percentile(1, q)->batches_used == p.batches_used);
  CHECK(point.percentile(1, q)->constant_batches == p.constant_batches);
}

std::vector<at::Tensor> relu_like_batches(std::vector<int64_t> shape) {
  std::vector<at::Tensor> batches;
  for (int b = 0; b < 4; ++b) batches.push_back(at::randn(shape).clamp_min(-0.5 + 0.3 * b) * (b + 1));
  batches[2].index_put_({at::indexing::Slice(), 4}, 0.0);  // a channel dead in one batch
  return batches;
}

}  // namespace

TEST_CASE("the CPU kernel path and the device (ATen ops) path give identical statistics") {
  at::manual_seed(6);
  std::vector<at::Tensor> batches = relu_like_batches({3, 5, 20, 20});
  check_cpu_path_equals_device_path(batches, 0.95f);
  PercentileObserver pct(1, 0.95f);
  for (const auto& x : batches) pct.observe(x);
  CHECK(pct.finalize().batches_used[4] == 3);
}

TEST_CASE("every layout the CPU path reorders into gives the device path's statistics") {
  at::manual_seed(7);
  SUBCASE("small channels, one image: transposed for the rows kernel") {
    check_cpu_path_equals_device_path(relu_like_batches({1, 9, 4, 4}), 0.975f);
  }
  SUBCASE("small channels, several images: transposed for the rows kernel") {
    check_cpu_path_equals_device_path(relu_like_batches({6, 5, 3, 2}), 0.975f);
  }
  SUBCASE("short runs, larger channels: copied channel-first") {
    check_cpu_path_equals_device_path(relu_like_batches({40, 5, 3, 3}), 0.975f);
  }
  SUBCASE("a rank the rows kernel declines on small channels") {
    check_cpu_path_equals_device_path(relu_like_batches({1, 7, 8, 8}), 0.5f);
  }
  SUBCASE("a NaN in a small channel") {
    std::vector<at::Tensor> batches = relu_like_batches({1, 9, 4, 4});
    batches[1].index_put_({0, 3, 2, 1}, std::numeric_limits<float>::quiet_NaN());
    check_cpu_path_equals_device_path(batches, 0.975f);
  }
}

TEST_CASE("the layout copies equal ATen's movedim") {
  at::manual_seed(8);
  for (auto shape : {std::vector<int64_t>{3, 17, 70}, std::vector<int64_t>{1, 33, 1024}, std::vector<int64_t>{2, 5, 1},
                     std::vector<int64_t>{2, 24, 13}, std::vector<int64_t>{1, 8, 8}, std::vector<int64_t>{2, 7, 200}}) {
    at::Tensor x = at::randn(shape);
    const int64_t outer = shape[0], c = shape[1], inner = shape[2];
    std::vector<float> last(x.numel()), first(x.numel());
    to_channels_last(x.data_ptr<float>(), outer, c, inner, last.data());
    to_channels_first(x.data_ptr<float>(), outer, c, inner, first.data());
    at::Tensor want_last = x.movedim(1, 2).contiguous(), want_first = x.movedim(1, 0).contiguous();
    CHECK(std::equal(last.begin(), last.end(), want_last.data_ptr<float>()));
    CHECK(std::equal(first.begin(), first.end(), want_first.data_ptr<float>()));
  }
}

namespace {

// The rows kernel on x as [rows, C] (channels innermost) against the channel kernel on the same values.
void check_rows_kernel(const at::Tensor& x, const std::vector<float>& qs) {
  at::Tensor xc = x.contiguous();
  const int64_t rows = xc.size(0), c = xc.size(1);
  std::vector<int64_t> ranks;
  for (float q : qs) ranks.push_back(quantile_lower_rank(q, rows));
  REQUIRE(rows_kernel_applies(rows, ranks));
  ChannelBatchStats got, want;
  channel_stats_rows_cpu(xc.data_ptr<float>(), rows, c, ranks, got);
  channel_stats_cpu(xc.data_ptr<float>(), rows, c, 1, ranks, want);
  for (int64_t ch = 0; ch < c; ++ch) {
    CAPTURE(ch);
    auto same = [](float a, float b) { return (std::isnan(a) && std::isnan(b)) || (a == b && std::signbit(a) == std::signbit(b)); };
    CHECK(same(got.min[ch], want.min[ch]));
    CHECK(same(got.max[ch], want.max[ch]));
    for (size_t r = 0; r < ranks.size(); ++r) {
      CAPTURE(ranks[r]);
      CHECK(same(got.kth[r * c + ch], want.kth[r * c + ch]));
    }
  }
}

}  // namespace

TEST_CASE("channels innermost ([tokens, features]): the rows kernel equals the channel kernel") {
  at::manual_seed(5);
  check_rows_kernel(at::randn({394, 77}), {0.975f});                 // a ViT token count, 9 full groups + 5
  check_rows_kernel(at::randn({40, 16}), {0.0f, 1.0f, 0.975f, 0.02f});  // min, max, both tails
  check_rows_kernel(at::randn({1000, 9}).exp(), {0.99f});            // heavy tail
  check_rows_kernel(at::randn({300, 24}).sub(1.5).clamp_min(0), {0.975f});  // ReLU zeros: ties
  at::Tensor x = at::randn({200, 12});
  x.index_put_({at::indexing::Slice(), 0}, -0.0);
  x.index_put_({at::indexing::Slice(0, 190), 1}, std::numeric_limits<float>::infinity());
  x.index_put_({7, 2}, std::numeric_limits<float>::quiet_NaN());
  x.index_put_({at::indexing::Slice(0, 195), 3}, -std::numeric_limits<float>::infinity());
  x.index_put_({at::indexing::Slice(0, 100), 9}, 0.0);
  x.index_put_({at::indexing::Slice(100, 200), 9}, -0.0);
  check_rows_kernel(x, {0.975f, 0.99f});
}

TEST_CASE("the rows kernel declines long tails, which the channel-first path then takes") {
  CHECK(rows_kernel_applies(394, {quantile_lower_rank(0.975f, 394)}));
  CHECK_FALSE(rows_kernel_applies(4096, {quantile_lower_rank(0.975f, 4096)}));  // 103 values kept
  CHECK_FALSE(rows_kernel_applies(1000, {quantile_lower_rank(0.5f, 1000)}));
  CHECK(rows_kernel_applies(100000, {}));  // min/max only
}
