// Observer updates against PyTorch's ModelReportObserver (reference oracle v1, v4, v10).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <random>
#include <limits>

#include "observers/observers.h"
#include "observers/stat_observers.h"
#include "oracle_v1.h"
#include "test_support.h"

using namespace qreport::observers;

namespace {


ObservationPoint v1_point(int batches) {
  ObservationPoint p;
  p.want_range();
  p.want_minmax(1);
  p.want_percentile(1, 0.9f);
  for (int k = 0; k < batches; ++k) p.observe(v1_batch(k));
  p.finalize();
  return p;
}

const float kFltMax = 3.4028234663852886e38f;

}  // namespace

TEST_CASE("v1 after one batch") {
  auto p = v1_point(1);
  CHECK(p.range()->batches == 1);
  CHECK(p.range()->avg_range == 60.0f);
  CHECK(p.range()->epoch_min == -10.0f);
  CHECK(p.range()->epoch_max == 50.0f);
  CHECK(*batch_to_epoch_ratio(*p.range(), nullptr) == 1.0f);
  CHECK(p.minmax(1)->min == std::vector<float>{1, 7, 0, -10, 0});
  CHECK(p.minmax(1)->max == std::vector<float>{10, 7, 0, -1, 50});
  const auto* q = p.percentile(1, 0.9f);
  CHECK(q->avg_ratio == std::vector<float>{1.1111111640930176f, 1.0f, 0.0f, 0.5f, kFltMax});
  CHECK(q->batches_used == std::vector<int32_t>{1, 1, 0, 1, 1});
  CHECK(q->constant_batches == std::vector<int32_t>{0, 1, 1, 0, 0});
}

TEST_CASE("v1 after three batches") {
  auto p = v1_point(3);
  CHECK(p.range()->avg_range == 110.0f);
  CHECK(p.range()->epoch_max == 150.0f);
  CHECK(*batch_to_epoch_ratio(*p.range(), nullptr) == 0.6875f);
  CHECK(p.minmax(1)->max == std::vector<float>{12, 7, 0, -1, 150});
  const auto* q = p.percentile(1, 0.9f);
  CHECK(q->avg_ratio == std::vector<float>{1.1006733179092407f, 1.0f, 0.0f, 0.5f, kFltMax});
  CHECK(q->batches_used == std::vector<int32_t>{3, 3, 0, 3, 3});
  CHECK(q->constant_batches == std::vector<int32_t>{0, 3, 3, 0, 0});
  CHECK(q->batches == 3);
}

TEST_CASE("v1 after two batches: S") {
  auto p = v1_point(2);
  CHECK(p.range()->avg_range == 85.0f);
  CHECK(*batch_to_epoch_ratio(*p.range(), nullptr) == 0.7727272510528564f);
  CHECK(p.percentile(1, 0.9f)->avg_ratio[0] == 1.105555534362793f);
}

TEST_CASE("v4 edge cases: NaN, inf, negative channels") {
  auto obs = [](at::Tensor x) {
    ObservationPoint p;
    p.want_range();
    p.want_minmax(1);
    p.want_percentile(1, 0.9f);
    p.observe(x);
    p.finalize();
    return p;
  };
  float nan = std::nanf("");
  auto p = obs(at::tensor({1.0f, 2.0f, nan, 1.0f, 2.0f, 3.0f}).reshape({1, 2, 3}));
  CHECK(std::isnan(p.range()->avg_range));
  CHECK(std::isnan(p.minmax(1)->min[0]));
  CHECK(p.minmax(1)->min[1] == 1.0f);
  CHECK(p.percentile(1, 0.9f)->avg_ratio == std::vector<float>{0.0f, 1.5f});
  CHECK(p.percentile(1, 0.9f)->batches_used == std::vector<int32_t>{1, 1});
  CHECK_FALSE(batch_to_epoch_ratio(*p.range(), nullptr).has_value());

  float inf = INFINITY;
  auto pi = obs(at::tensor({1.0f, 2.0f, inf, 1.0f, 2.0f, 3.0f}).reshape({1, 2, 3}));
  CHECK(pi.percentile(1, 0.9f)->avg_ratio == std::vector<float>{kFltMax, 1.5f});
  std::string why;
  CHECK_FALSE(batch_to_epoch_ratio(*pi.range(), &why).has_value());
  CHECK(why == "infinite values were observed");

  auto pn = obs(at::tensor({-1.0f, -2.0f, -3.0f, -1.0f, 0.0f, 0.0f}).reshape({1, 2, 3}));
  CHECK(pn.percentile(1, 0.9f)->avg_ratio == std::vector<float>{0.5f, 0.0f});
  CHECK(pn.percentile(1, 0.9f)->batches_used == std::vector<int32_t>{1, 0});
}

TEST_CASE("v10 / PyTorch test 8: ten all-zero batches") {
  ObservationPoint p;
  p.want_range();
  p.want_minmax(1);
  p.want_percentile(1, 0.9f);
  for (int i = 0; i < 10; ++i) p.observe(at::zeros({1, 1, 5}));
  p.finalize();
  CHECK(p.range()->batches == 10);
  CHECK(p.range()->avg_range == 0.0f);
  std::string why;
  CHECK_FALSE(batch_to_epoch_ratio(*p.range(), &why).has_value());
  CHECK(p.percentile(1, 0.9f)->constant_batches == std::vector<int32_t>{10});
  CHECK(p.percentile(1, 0.9f)->batches_used == std::vector<int32_t>{0});
  CHECK(p.percentile(1, 0.9f)->avg_ratio == std::vector<float>{0.0f});
}

TEST_CASE("PyTorch test 9: one batch of ones") {
  ObservationPoint p;
  p.want_percentile(1, 0.9f);
  p.observe(at::ones({1, 1, 5}));
  p.finalize();
  CHECK(p.percentile(1, 0.9f)->avg_ratio == std::vector<float>{1.0f});
  CHECK(p.percentile(1, 0.9f)->batches_used == std::vector<int32_t>{1});
  CHECK(p.percentile(1, 0.9f)->constant_batches == std::vector<int32_t>{1});
}

TEST_CASE("each statistic keeps its own settings on one observed value") {
  ObservationPoint p;
  p.want_percentile(1, 0.9f);
  p.want_percentile(1, 0.975f);
  at::Tensor x = at::arange(1, 41, at::kFloat).reshape({1, 1, 40});  // 1..40: q0.9 -> 36, q0.975 -> 39
  p.observe(x);
  p.finalize();
  CHECK(p.percentile(1, 0.9f)->avg_ratio[0] == 40.0f / 36.0f);
  CHECK(p.percentile(1, 0.975f)->avg_ratio[0] == 40.0f / 39.0f);
}

TEST_CASE("the percentile is taken along ch_axis, also for ch_axis != 1 (PyTorch bug B1)") {
  ObservationPoint p;
  p.want_percentile(2, 0.5f);
  p.want_minmax(2);
  // [1, 2, 3]: channel c along dim 2 holds {c+1, 10*(c+1)}.
  at::Tensor x = at::tensor({1.0f, 2.0f, 3.0f, 10.0f, 20.0f, 30.0f}).reshape({1, 2, 3});
  p.observe(x);
  p.finalize();
  CHECK(p.percentile(2, 0.5f)->avg_ratio == std::vector<float>{10.0f, 10.0f, 10.0f});
  CHECK(p.minmax(2)->max == std::vector<float>{10, 20, 30});
}

TEST_CASE("a tensor without the channel axis, or a changed channel count, invalidates the statistic") {
  ObservationPoint p;
  p.want_minmax(1);
  p.observe(at::ones({4}));
  p.finalize();
  CHECK(p.minmax(1)->invalid == "a 1-d tensor has no channel axis 1");
  ObservationPoint q;
  q.want_percentile(1, 0.9f);
  q.observe(at::ones({2, 5}));
  q.observe(at::ones({2, 3}));
  q.finalize();
  CHECK(q.percentile(1, 0.9f)->invalid == "the channel count changed between batches (5 then 3)");
}

TEST_CASE("no 2^24-element limit on a channel") {
  ObservationPoint p;
  p.want_percentile(1, 0.5f);
  at::Tensor x = at::ones({(1 << 24) + 8, 1});
  x[0][0] = 2.0f;
  p.observe(x);
  p.finalize();
  CHECK(p.percentile(1, 0.5f)->avg_ratio == std::vector<float>{2.0f});
}

TEST_CASE("histogram: the first batch's bins are torch.histc's, bin for bin, on any thread count") {
  at::manual_seed(3);
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    // Values on bin edges, at both ends of the range, repeated (zeros), and a long tail.
    at::Tensor x = at::cat({at::randn({50000}), at::zeros({20000}), at::linspace(-3, 5, 2049),
                            at::full({7}, 5.0f), at::randn({100}) * 40});
    qreport::observers::ObservationPoint p;
    p.want_histogram();
    p.observe(x);
    p.finalize();
    const auto* h = p.histogram();
    REQUIRE(h);
    auto [mn, mx] = at::aminmax(x);
    at::Tensor want = at::histc(x, 2048, mn.item<float>(), mx.item<float>());
    REQUIRE(h->histogram.size() == 2048);
    CHECK(at::equal(at::from_blob(const_cast<float*>(h->histogram.data()), {2048}, at::kFloat), want));
    CHECK(h->data_min == mn.item<float>());
    CHECK(h->data_max == mx.item<float>());
    CHECK(h->sum_squares == doctest::Approx(x.to(at::kDouble).square().sum().item<double>()).epsilon(1e-6));
    CHECK(h->count == x.numel());
  }
  at::set_num_threads(1);
}

TEST_CASE("histogram: NaN or infinity makes the statistic invalid, not NaN") {
  qreport::observers::ObservationPoint p;
  p.want_histogram();
  p.observe(at::tensor({1.0f, std::numeric_limits<float>::infinity()}));
  p.observe(at::tensor({std::nanf(""), 2.0f, -std::numeric_limits<float>::infinity()}));
  p.observe(at::tensor({1.0f, 2.0f}));
  p.finalize(3);
  CHECK(p.histogram()->invalid == "the observed values include NaN or infinity");
  // Counted whether the range came from the histogram's own read or not.
  CHECK(p.non_finite().pos_inf == 1);
  CHECK(p.non_finite().neg_inf == 1);
  CHECK(p.non_finite().nan == 1);
  CHECK(p.non_finite().first_batch == 0);
}

// A constant batch's bins come from ATen's histc (an empty range), and its sum of squares must still
// count where the channel statistics lent the range (the sum is then not taken in the histogram's read).
TEST_CASE("histogram: a constant batch's sum of squares counts, with the range lent or not") {
  at::set_num_threads(1);
  for (bool lend : {false, true}) {
    CAPTURE(lend);
    ObservationPoint p;
    p.want_histogram();
    if (lend) p.want_minmax(1);
    const at::Tensor c = at::full({2, 3, 4, 4}, 2.0f), v = at::arange(96, at::kFloat).reshape({2, 3, 4, 4});
    p.observe(c);
    p.observe(v);
    p.observe(c);
    p.finalize();
    const double want = 2 * 96 * 4.0 + v.to(at::kDouble).square().sum().item<double>();  // exact in float32
    CHECK(p.histogram()->sum_squares == want);
    CHECK(p.histogram()->count == 3 * 96);
  }
}

// Values whose squares overflow float32 are not NaN or infinity: the reason says what happened.
TEST_CASE("histogram: squares beyond float32 make the statistic invalid with their own reason") {
  for (bool lend : {false, true}) {
    CAPTURE(lend);
    ObservationPoint p;
    p.want_histogram();
    if (lend) p.want_minmax(1);
    p.observe(at::tensor({1.0f, -3e20f, 2.0f}).reshape({1, 3}));
    p.finalize();
    CHECK(p.histogram()->invalid.rfind("the observed values' squares overflow float32", 0) == 0);
  }
}

// A point with channel statistics passes their range to its histogram, which then takes the sum of
// squares in its own read; the summary must be the one a histogram-only point computes bit for bit.
TEST_CASE("histogram: the range lent by the channel statistics changes nothing in the summary") {
  const float inf = std::numeric_limits<float>::infinity();
  auto batches = [&](int variant) {
    at::manual_seed(11);
    std::vector<at::Tensor> b;
    b.push_back(at::randn({2, 3, 40, 40}));
    b.push_back(at::randn({2, 3, 40, 40}).clamp_min(0) * 3);  // wider: the histograms combine
    at::Tensor z = at::randn({2, 3, 40, 40});
    z.index_put_({0}, -0.0f);  // signed zeros at the minimum
    b.push_back(z.clamp_max(0.0f).neg());
    b.push_back(at::randn({2, 3, 5, 5}) * 0.5);  // narrower and smaller
    if (variant == 1) b.push_back(at::full({2, 3, 4, 4}, inf));
    if (variant == 2) b.push_back(at::full({2, 3, 4, 4}, std::numeric_limits<float>::quiet_NaN()));
    if (variant == 3) b.push_back(at::randn({2, 3, 4, 4}) * 1e30);  // grew too much
    b.push_back(at::randn({2, 3, 8, 8}));
    return b;
  };
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int variant = 0; variant < 4; ++variant) {
      CAPTURE(threads);
      CAPTURE(variant);
      // The reference reads its own range and sum of squares (HistogramObserver without a lent range);
      // a histogram-only point takes its range from one parallel read, a point with channel statistics
      // from theirs.
      HistogramObserver direct;
      ObservationPoint alone, lent;
      alone.want_histogram();
      lent.want_histogram();
      lent.want_minmax(1);
      for (const at::Tensor& x : batches(variant)) {
        direct.observe(x);
        alone.observe(x);
        lent.observe(x);
      }
      alone.finalize();
      lent.finalize();
      const HistogramSummary a = direct.finalize();
      for (const HistogramSummary* point : {alone.histogram(), lent.histogram()}) {
      const HistogramSummary& l = *point;
      CHECK(l.invalid == a.invalid);
      CHECK(l.histogram == a.histogram);
      CHECK(l.min_val == a.min_val);
      CHECK(l.max_val == a.max_val);
      CHECK(l.data_min == a.data_min);
      CHECK(l.data_max == a.data_max);
      CHECK(l.sum_squares == a.sum_squares);  // bit for bit: same blocks, same float operations
      CHECK(l.count == a.count);
      CHECK(l.batches == a.batches);
      }
      CHECK(a.invalid.empty() == (variant == 0));
    }
  }
  at::set_num_threads(1);
}

TEST_CASE("add_repeated equals n float64 additions one by one, also where rounding happens") {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int rounded = 0;
  for (int t = 0; t < 20000; ++t) {
    // Histogram-like values: counts, counts / 128, and wide ranges of float32 magnitudes.
    const int kind = t % 4;
    float v = kind == 0 ? std::floor(static_cast<float>(unit(rng) * 1000))
              : kind == 1 ? std::floor(static_cast<float>(unit(rng) * 1000)) / 128.0f
              : static_cast<float>(std::ldexp(unit(rng), static_cast<int>(unit(rng) * 80) - 40));
    double acc = kind == 3 ? std::ldexp(unit(rng), static_cast<int>(unit(rng) * 60))
                           : std::floor(unit(rng) * 1e6) / (kind == 1 ? 128.0 : 1.0);
    const int64_t n = 1 + static_cast<int64_t>(unit(rng) * 128);
    double slow = acc;
    for (int64_t i = 0; i < n; ++i) slow += static_cast<double>(v);
    const double fast = add_repeated(acc, static_cast<double>(v), n);
    CAPTURE(acc);
    CAPTURE(v);
    CAPTURE(n);
    REQUIRE(fast == slow);
    rounded += acc + static_cast<double>(n) * v != slow;
  }
  CHECK(rounded > 100);  // cases where the shortcut would be wrong were tried
}

// The fused weight noise against torch's fake_quantize functions: the same fake-quantized values, so the
// same sums (float64 here, against float64 sums of torch's float32 differences).
TEST_CASE("weight quantization noise equals torch's fake_quantize per tensor and per channel") {
  at::manual_seed(12);
  for (const at::Tensor& w : {at::randn({64, 3, 3, 3}), at::randn({768, 3072}) * 0.02, at::randn({10, 1}),
                              at::cat({at::zeros({1, 50}), at::randn({5, 50}).exp()}), at::randn({7})}) {
    CAPTURE(w.sizes());
    const auto got = weight_quantization_noise(w);
    REQUIRE(got);
    auto sums = [&](const at::Tensor& fq) {
      const at::Tensor d = (w - fq).to(at::kDouble);
      return (d * d).sum().item<double>();
    };
    const double signal = w.to(at::kDouble).square().sum().item<double>();
    CHECK(got->signal == doctest::Approx(signal).epsilon(1e-6));
    CHECK(got->noise_per_tensor == doctest::Approx(sums(fake_quantize_weight(w, false))).epsilon(1e-6));
    CHECK(got->noise_per_channel == doctest::Approx(sums(fake_quantize_weight(w, true))).epsilon(1e-6));
  }
  at::Tensor bad = at::randn({4, 4});
  bad[1][2] = std::numeric_limits<float>::infinity();
  CHECK(!weight_quantization_noise(bad));  // torch's path decides what a non-finite weight gives
  CHECK(!weight_quantization_noise(at::randn({4, 4}).to(at::kDouble)));
}

// Below the parallel grain, two threads take a point's channel statistics and its histogram side by
// side; the results are one thread's, whatever ran where.
TEST_CASE("a small activation's statistics and histogram, side by side on two threads, equal one thread's") {
  auto run = [](int threads) {
    at::set_num_threads(threads);
    at::manual_seed(13);
    ObservationPoint p;
    p.want_range();
    p.want_minmax(1);
    p.want_percentile(1, 0.975f);
    p.want_histogram();
    for (int b = 0; b < 6; ++b) p.observe(at::randn({1, 16, 20, 20}) * (1 + b % 3));
    p.finalize();
    return p;
  };
  ObservationPoint one = run(1), two = run(2);
  at::set_num_threads(1);
  CHECK(two.calls() == one.calls());
  CHECK(two.minmax(1)->min == one.minmax(1)->min);
  CHECK(two.minmax(1)->max == one.minmax(1)->max);
  CHECK(two.percentile(1, 0.975f)->avg_ratio == one.percentile(1, 0.975f)->avg_ratio);
  CHECK(two.range()->avg_range == one.range()->avg_range);
  CHECK(two.histogram()->histogram == one.histogram()->histogram);
  CHECK(two.histogram()->sum_squares == one.histogram()->sum_squares);
  CHECK(two.histogram()->max_val == one.histogram()->max_val);
  CHECK(!one.histogram()->histogram.empty());
}

// A point that wants only the tensor-wide range (dynamic_static on a Conv output) reads min, max and NaN
// in one pass of its own: the range equals at::aminmax's, and the NaN/inf counts are still taken where
// the range is not finite.
TEST_CASE("range alone: at::aminmax's range, and the non-finite counts, from one read") {
  at::set_num_threads(2);
  at::manual_seed(5);
  const float nan = std::nanf(""), inf = INFINITY;
  std::vector<at::Tensor> batches = {at::randn({2, 8, 50, 50}), at::randn({3, 70001}) * 4 - 1, at::randn({5})};
  at::Tensor with_inf = at::randn({2, 8, 50, 50});
  with_inf.view({-1})[12345] = inf;
  with_inf.view({-1})[99] = -inf;
  at::Tensor with_nan = at::randn({40001});
  with_nan[40000] = nan;
  ObservationPoint finite, bad;
  finite.want_range();
  bad.want_range();
  float sum = 0.0f, lo = INFINITY, hi = -INFINITY;
  for (const auto& x : batches) {
    finite.observe(x);
    auto [mn, mx] = at::aminmax(x);
    sum += mx.item<float>() - mn.item<float>();
    lo = std::min(lo, mn.item<float>());
    hi = std::max(hi, mx.item<float>());
  }
  finite.finalize(3);
  CHECK(finite.range()->epoch_min == lo);
  CHECK(finite.range()->epoch_max == hi);
  CHECK(finite.range()->avg_range == sum / 3);
  CHECK(finite.non_finite().nan + finite.non_finite().pos_inf + finite.non_finite().neg_inf == 0);

  bad.observe(batches[0]);
  bad.observe(with_inf);
  bad.observe(with_nan);
  bad.finalize(3);
  CHECK(bad.non_finite().pos_inf == 1);
  CHECK(bad.non_finite().neg_inf == 1);
  CHECK(bad.non_finite().nan == 1);
  CHECK(bad.non_finite().first_batch == 1);
  CHECK(std::isnan(bad.range()->avg_range));
  at::set_num_threads(1);
}

TEST_CASE("a range taken from another point's read of the same tensor equals the point's own read") {
  at::set_num_threads(2);
  at::manual_seed(6);
  const float nan = std::nanf(""), inf = INFINITY;
  at::Tensor with_inf = at::randn({2, 8, 50, 50});
  with_inf.view({-1})[777] = inf;
  at::Tensor with_nan = at::randn({2, 8, 50, 50});
  with_nan.view({-1})[4242] = nan;
  // Conv-like activations of 8 channels: large (kernel on two threads), small, and non-finite ones.
  const std::vector<at::Tensor> batches = {at::randn({2, 8, 50, 50}) * 3 + 1, at::randn({1, 8, 7, 7}), with_inf,
                                           with_nan, at::randn({4, 8, 30, 30}).relu()};
  ObservationPoint own, taken, reader;
  own.want_range();
  taken.want_range();
  reader.want_percentile(1, 0.975f);  // the outlier detector's statistic: reads every value anyway
  reader.want_minmax(1);
  CHECK(taken.wants_only_range());
  CHECK_FALSE(reader.wants_only_range());
  CHECK(reader.reads_range());
  CHECK_FALSE(own.reads_range());
  for (const auto& x : batches) {
    own.observe(x);
    const auto range = reader.observe_and_range(x);
    REQUIRE(range.has_value());
    auto [mn, mx] = at::aminmax(x);
    CHECK((std::isnan(mn.item<float>()) ? std::isnan(range->first) : range->first == mn.item<float>()));
    CHECK((std::isnan(mx.item<float>()) ? std::isnan(range->second) : range->second == mx.item<float>()));
    taken.observe_with_range(x, *range);
  }
  own.finalize(5);
  taken.finalize(5);
  CHECK(taken.calls() == own.calls());
  const auto& a = *own.range();
  const auto& b = *taken.range();
  CHECK(std::memcmp(&a.epoch_min, &b.epoch_min, sizeof a.epoch_min) == 0);
  CHECK(std::memcmp(&a.epoch_max, &b.epoch_max, sizeof a.epoch_max) == 0);
  CHECK(std::memcmp(&a.avg_range, &b.avg_range, sizeof a.avg_range) == 0);
  CHECK(taken.non_finite().nan == 1);
  CHECK(taken.non_finite().pos_inf == 1);
  CHECK(taken.non_finite().first_batch == own.non_finite().first_batch);
  // A point that wants more than the range ignores the lent one and reads the tensor itself.
  ObservationPoint more, plain;
  more.want_range();
  more.want_minmax(1);
  plain.want_range();
  plain.want_minmax(1);
  more.observe_with_range(batches[0], {-1.0f, 1.0f});
  plain.observe(batches[0]);
  more.finalize(1);
  plain.finalize(1);
  CHECK(more.range()->epoch_min == plain.range()->epoch_min);
  CHECK(more.minmax(1)->max == plain.minmax(1)->max);
  at::set_num_threads(1);
}
