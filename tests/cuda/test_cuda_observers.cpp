// Observers on a CUDA device against the CPU path, statistic by statistic. The CUDA path (fused kernels
// where built, ATen ops otherwise) replays the same float32 arithmetic and selects the same exact order
// statistics, so the summaries must be equal to the bit. Without a GPU the whole executable reports
// "skipped" to ctest (exit 77) instead of passing.
#define DOCTEST_CONFIG_IMPLEMENT  // own main(): exit 77 (skipped) without a GPU
#include <ATen/ATen.h>
#include <torch/cuda.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "observers/observers.h"
#include "test_support.h"

using namespace qreport::observers;

namespace {

ObservationPoint run(const std::vector<at::Tensor>& batches, const at::Device& device) {
  ObservationPoint p;
  p.want_range();
  p.want_minmax(1);
  p.want_percentile(1, 0.975f);
  p.want_percentile(1, 0.5f);
  for (const auto& b : batches) p.observe(b.to(device));
  p.finalize();
  return p;
}

bool same(float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }

bool same(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}

void check_equal(const std::vector<at::Tensor>& batches) {
  ObservationPoint cpu = run(batches, at::kCPU), gpu = run(batches, at::Device(at::kCUDA, 0));
  CHECK(same(cpu.range()->avg_range, gpu.range()->avg_range));
  CHECK(same(cpu.range()->epoch_min, gpu.range()->epoch_min));
  CHECK(same(cpu.range()->epoch_max, gpu.range()->epoch_max));
  CHECK(same(cpu.minmax(1)->min, gpu.minmax(1)->min));
  CHECK(same(cpu.minmax(1)->max, gpu.minmax(1)->max));
  for (float q : {0.975f, 0.5f}) {
    CAPTURE(q);
    CHECK(same(cpu.percentile(1, q)->avg_ratio, gpu.percentile(1, q)->avg_ratio));
    CHECK(cpu.percentile(1, q)->batches_used == gpu.percentile(1, q)->batches_used);
    CHECK(cpu.percentile(1, q)->constant_batches == gpu.percentile(1, q)->constant_batches);
  }
}

}  // namespace

TEST_CASE("conv activations: random, ReLU zeros, saturation, heavy tails") {
  at::manual_seed(11);
  std::vector<at::Tensor> b;
  b.push_back(at::randn({8, 16, 28, 28}));
  b.push_back(at::randn({8, 16, 28, 28}).clamp_min(0));
  b.push_back(at::randn({8, 16, 28, 28}).mul(6).clamp(0, 6));
  b.push_back(at::randn({8, 16, 28, 28}).exp());
  check_equal(b);
}

TEST_CASE("Linear-like inputs, tiny channels, signed zeros, NaN and infinities") {
  std::vector<at::Tensor> b;
  b.push_back(at::randn({64, 300}));
  at::Tensor x = at::randn({2, 5, 3});
  x.index_put_({0, 0}, -0.0);
  x.index_put_({1, 1, 2}, std::numeric_limits<float>::quiet_NaN());
  x.index_put_({0, 2, 1}, std::numeric_limits<float>::infinity());
  check_equal({x, x * 2});
  check_equal(b);
}

TEST_CASE("large channels (several blocks per channel) and many batches") {
  at::manual_seed(12);
  std::vector<at::Tensor> b;
  for (int i = 0; i < 6; ++i) b.push_back(at::randn({16, 3, 128, 128}) * (i + 1));
  check_equal(b);
}

TEST_CASE("mostly zeros (ReLU) on channels of one block and of several: one histogram bin takes most values") {
  at::manual_seed(13);
  check_equal({at::randn({4, 8, 40, 40}).sub(1.5).clamp_min(0), at::randn({16, 2, 128, 128}).sub(1.5).clamp_min(0)});
}

TEST_CASE("a wide Linear input (4096 features, 64 rows) and min/max alone") {
  at::manual_seed(14);
  check_equal({at::randn({64, 4096}), at::randn({64, 4096}).clamp_min(0)});
  for (const auto& x : {at::randn({64, 4096}), at::randn({16, 3, 128, 128})}) {  // equalization's statistic
    ObservationPoint cpu, gpu;
    cpu.want_minmax(1);
    gpu.want_minmax(1);
    cpu.observe(x);
    gpu.observe(x.to(at::Device(at::kCUDA, 0)));
    cpu.finalize();
    gpu.finalize();
    CHECK(same(cpu.minmax(1)->min, gpu.minmax(1)->min));
    CHECK(same(cpu.minmax(1)->max, gpu.minmax(1)->max));
  }
}

// The LLM.int8() sums: the CUDA kernel's first digit pass (float64 per thread) against the CPU kernels
// (float32 blocks of 64, then float64): counts equal, sums within the CPU path's rounding bound.
TEST_CASE("LLM.int8() moments of Linear inputs: one block per channel and several") {
  at::manual_seed(16);
  for (int64_t rows : {300, 40000}) {  // 40000 values per channel: several blocks, atomics across them
    CAPTURE(rows);
    at::Tensor x = at::randn({rows, 24}) * 3;
    x.select(1, 5).mul_(5);
    std::vector<MomentsSummary> got;
    for (const auto& device : {at::Device(at::kCPU), at::Device(at::kCUDA, 0)}) {
      ObservationPoint p;
      p.want_minmax(-1);
      p.want_percentile(-1, 0.975f);
      p.want_moments(-1);
      p.observe(x.to(device));
      p.observe(x.to(device) * 0.5);
      p.finalize();
      got.push_back(*p.moments(-1));
    }
    CHECK(got[0].rows == got[1].rows);
    CHECK(got[0].above == got[1].above);
    at::Tensor d = x.to(at::kDouble);
    for (int k = 0; k < 4; ++k) {
      const auto& a = k == 0 ? got[0].s1 : k == 1 ? got[0].s2 : k == 2 ? got[0].s3 : got[0].s4;
      const auto& b = k == 0 ? got[1].s1 : k == 1 ? got[1].s2 : k == 2 ? got[1].s3 : got[1].s4;
      at::Tensor scale = d.abs().pow(k + 1).sum(0) * 2;
      for (int64_t c = 0; c < 24; ++c) CHECK(std::fabs(a[c] - b[c]) <= 64 * 6e-8 * scale[c].item<double>());
    }
  }
}

TEST_CASE("a second GPU (cuda:1): kernels launch on the tensor's device") {
  if (torch::cuda::device_count() < 2) {
    MESSAGE("one GPU: cuda:1 not tested");
    return;
  }
  at::manual_seed(15);
  std::vector<at::Tensor> b{at::randn({8, 16, 28, 28}), at::randn({16, 3, 128, 128})};
  ObservationPoint cpu = run(b, at::kCPU), gpu = run(b, at::Device(at::kCUDA, 1));
  CHECK(same(cpu.minmax(1)->min, gpu.minmax(1)->min));
  CHECK(same(cpu.percentile(1, 0.975f)->avg_ratio, gpu.percentile(1, 0.975f)->avg_ratio));
}

int main(int argc, char** argv) {
  if (!at::hasCUDA()) {
    std::puts("skipped: no CUDA device (or a LibTorch without CUDA)");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
