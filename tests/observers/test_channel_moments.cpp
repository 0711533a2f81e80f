// The LLM.int8() moments (channel_kernel.h, ChannelMoments): summed inside the kernels' own reads, on each
// path (rows kernel, channel-first copy, the separate read for a single row), against float64 sums by ATen,
// and equal bit for bit between the paths (same float32 blocks in the same order).
#include <ATen/ATen.h>

#include <cmath>

#include "observers/channel_kernel.h"
#include "observers/observers.h"
#include "test_support.h"

using namespace qreport::observers;

namespace {

// ATen's float64 sums of x^k over the rows of [rows, C], and the count of |x| >= 6.
struct Want {
  at::Tensor s[4], above;
  explicit Want(const at::Tensor& x) {
    at::Tensor d = x.to(at::kDouble);
    for (int k = 0; k < 4; ++k) s[k] = d.pow(k + 1).sum(0);
    above = (x.abs() >= 6.0f).sum(0).to(at::kDouble);
  }
};

void check_against_aten(const at::Tensor& x, const ChannelMoments& m) {
  const Want w(x);
  const std::vector<double>* got[4] = {&m.s1, &m.s2, &m.s3, &m.s4};
  at::Tensor scale[4];
  for (int k = 0; k < 4; ++k) scale[k] = x.to(at::kDouble).abs().pow(k + 1).sum(0);  // no cancellation bound
  for (int64_t c = 0; c < x.size(1); ++c) {
    CAPTURE(c);
    for (int k = 0; k < 4; ++k) {
      CAPTURE(k);
      // Float32 blocks of 64 values: at most 64 roundings of 2^-24 each, relative to the sum of |x|^k.
      CHECK(std::fabs((*got[k])[c] - w.s[k][c].item<double>()) <= 64 * 6e-8 * scale[k][c].item<double>());
    }
    CHECK(m.above[c] == w.above[c].item<double>());
  }
}

bool same_bits(const ChannelMoments& a, const ChannelMoments& b) {
  auto eq = [](const std::vector<double>& u, const std::vector<double>& v) {
    if (u.size() != v.size()) return false;
    for (size_t i = 0; i < u.size(); ++i)
      if (!(u[i] == v[i] || (std::isnan(u[i]) && std::isnan(v[i])))) return false;
    return true;
  };
  return eq(a.s1, b.s1) && eq(a.s2, b.s2) && eq(a.s3, b.s3) && eq(a.s4, b.s4) && eq(a.above, b.above);
}

}  // namespace

TEST_CASE("moments: rows kernel, channel-first copy and the separate read agree with ATen and each other") {
  at::manual_seed(11);
  // 394 rows: six full blocks of 64 and a partial one; 77 channels: nine AVX2 groups and five scalar columns.
  at::Tensor x = at::randn({394, 77}) * 3;
  x.select(1, 5).mul_(4);  // a massive feature: most of its values beyond 6
  x[0][9] = 6.0f;          // exactly at the magnitude counts, just below does not
  x[1][9] = -6.0f;
  x[2][9] = std::nextafter(6.0f, 0.0f);
  const int64_t rows = x.size(0), c = x.size(1);
  const std::vector<int64_t> ranks = {quantile_lower_rank(0.975f, rows)};
  ChannelBatchStats stats;
  ChannelMoments by_rows, by_copy, by_read;
  channel_stats_rows_cpu(x.data_ptr<float>(), rows, c, ranks, stats, &by_rows);
  check_against_aten(x, by_rows);
  std::vector<float> plain(rows * c), copied(rows * c);
  to_channels_first(x.data_ptr<float>(), rows, c, 1, plain.data());
  to_channels_first_moments(x.data_ptr<float>(), rows, c, copied.data(), by_copy);
  CHECK(plain == copied);
  channel_moments_cpu(x.data_ptr<float>(), rows, c, 1, by_read);
  CHECK(same_bits(by_rows, by_copy));
  CHECK(same_bits(by_rows, by_read));
  // The moments do not change the kernel's other results.
  ChannelBatchStats without;
  channel_stats_rows_cpu(x.data_ptr<float>(), rows, c, ranks, without);
  CHECK(without.min == stats.min);
  CHECK(without.max == stats.max);
  CHECK(without.kth == stats.kth);
}

TEST_CASE("moments: |x| >= 6 counts 6 and -6, not the float just below 6") {
  at::Tensor x = at::zeros({4, 8});
  x[0][3] = 6.0f;
  x[1][3] = -6.0f;
  x[2][3] = std::nextafter(6.0f, 0.0f);
  x[3][3] = -std::nextafter(6.0f, 0.0f);
  ChannelBatchStats stats;
  ChannelMoments m;
  channel_stats_rows_cpu(x.data_ptr<float>(), 4, 8, {3}, stats, &m);
  CHECK(m.above[3] == 2);
  CHECK(m.above[2] == 0);
}

TEST_CASE("moments: a NaN makes its channel's sums NaN and is not counted") {
  at::Tensor x = at::full({10, 9}, 7.0f);
  x[3][2] = std::numeric_limits<float>::quiet_NaN();
  ChannelBatchStats stats;
  ChannelMoments m;
  channel_stats_rows_cpu(x.data_ptr<float>(), 10, 9, {9}, stats, &m);
  CHECK(std::isnan(m.s1[2]));
  CHECK(m.above[2] == 9);
  CHECK(m.above[1] == 10);
  CHECK(m.s2[1] == 490.0);
}

TEST_CASE("moments through ObservationPoint: every layout path, summed over batches") {
  at::manual_seed(12);
  // [2, 5, 24]: the rows kernel; [4, 500, 24]: more tokens than it takes (channel-first copy); [24]: one row.
  std::vector<at::Tensor> batches = {at::randn({2, 5, 24}) * 4, at::randn({4, 500, 24}) * 4, at::randn({24}) * 9};
  REQUIRE(!rows_kernel_applies(2000, {quantile_lower_rank(0.975f, 2000)}));
  ObservationPoint p;
  p.want_minmax(-1);
  p.want_percentile(-1, 0.975f);
  p.want_moments(-1);
  for (const auto& b : batches) p.observe(b);
  p.finalize(3);
  const MomentsSummary* m = p.moments(-1);
  REQUIRE(m != nullptr);
  CHECK(m->invalid.empty());
  CHECK(m->rows == 10 + 2000 + 1);
  at::Tensor all = at::cat({batches[0].reshape({-1, 24}), batches[1].reshape({-1, 24}), batches[2].reshape({1, 24})});
  ChannelMoments as_one;
  as_one.s1 = m->s1;
  as_one.s2 = m->s2;
  as_one.s3 = m->s3;
  as_one.s4 = m->s4;
  as_one.above = m->above;
  check_against_aten(all, as_one);
  CHECK(p.minmax(-1) != nullptr);
  CHECK(ObservationPoint().moments(-1) == nullptr);
}
