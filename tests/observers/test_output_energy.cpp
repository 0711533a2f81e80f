// add_output_energy: the error pass's sum(y^2) and sum((yq - y)^2) against a float64 oracle built from
// ATen (the difference taken in float32, as the tensors hold it), the same bits whatever the thread count,
// and ATen's own sums where the kernel does not apply.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "observers/output_energy.h"
#include "test_support.h"

using qreport::observers::add_output_energy;

namespace {

struct Energy {
  double signal, noise;
};

Energy run(const at::Tensor& y, const at::Tensor& yq, double start = 0.0) {
  at::Tensor s = at::full({}, start, at::kDouble), n = at::full({}, start, at::kDouble);
  add_output_energy(y, yq, s, n);
  return {s.item<double>(), n.item<double>()};
}

Energy oracle(const at::Tensor& y, const at::Tensor& yq) {
  const at::Tensor d = (yq - y).to(at::kDouble);  // float32 difference, then float64
  return {y.to(at::kDouble).square().sum().item<double>(), d.square().sum().item<double>()};
}

}  // namespace

TEST_CASE("output energy: float64 sums of the output and of the float32 difference") {
  at::manual_seed(3);
  // Sizes around the kernel's 8-value lanes and 1024-value blocks, and a 4-d output.
  for (auto shape : {std::vector<int64_t>{1}, std::vector<int64_t>{7}, std::vector<int64_t>{1023},
                     std::vector<int64_t>{1025}, std::vector<int64_t>{2, 16, 33, 31}}) {
    const at::Tensor y = at::randn(shape) * 100.0;
    const at::Tensor yq = y + at::randn(shape) * 0.01;
    const Energy got = run(y, yq), want = oracle(y, yq);
    CHECK(got.signal == doctest::Approx(want.signal).epsilon(1e-12));
    CHECK(got.noise == doctest::Approx(want.noise).epsilon(1e-12));
  }
  // It adds to what the accumulators hold (one call per layer call).
  const at::Tensor y = at::ones({10}), yq = at::full({10}, 1.5);
  const Energy twice = run(y, yq, 2.0);
  CHECK(twice.signal == 12.0);
  CHECK(twice.noise == 4.5);
}

TEST_CASE("output energy: the same bits on one thread and on several") {
  at::manual_seed(4);
  const at::Tensor y = at::randn({8, 96, 56, 56}), yq = y + at::randn({8, 96, 56, 56}) * 1e-3;
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Energy one = run(y, yq);
  at::set_num_threads(std::max(2, threads));
  const Energy many = run(y, yq);
  at::set_num_threads(threads);
  CHECK(one.signal == many.signal);
  CHECK(one.noise == many.noise);
}

TEST_CASE("output energy: layouts the kernel does not read go through ATen, with the same sums") {
  at::manual_seed(5);
  const at::Tensor base = at::randn({64, 48}), noisy = base + at::randn({64, 48}) * 0.1;
  // A transposed view against a contiguous tensor: the two are laid out differently.
  const at::Tensor y = base.t(), yq = noisy.t().contiguous();
  const Energy got = run(y, yq), want = oracle(y.contiguous(), yq);
  CHECK(got.signal == doctest::Approx(want.signal).epsilon(1e-6));
  CHECK(got.noise == doctest::Approx(want.noise).epsilon(1e-6));
  // Channels-last on both sides: the kernel reads them in memory order.
  const at::Tensor a = at::randn({2, 8, 5, 5}).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor b = (a + 0.25).contiguous(at::MemoryFormat::ChannelsLast);
  const Energy cl = run(a, b), ref = oracle(a.contiguous(), b.contiguous());
  CHECK(cl.signal == doctest::Approx(ref.signal).epsilon(1e-12));
  CHECK(cl.noise == doctest::Approx(ref.noise).epsilon(1e-12));
}
