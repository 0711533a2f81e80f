// ObserveWorker: small activations observed on the worker thread from private copies, in order; large
// ones on the calling thread; the worker's error back to the caller; the queue bounded.
#include <ATen/ATen.h>

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "observers/observers.h"
#include "pipeline/observe_worker.h"
#include "test_support.h"

using qreport::observers::ObservationPoint;
using qreport::pipeline::ObserveWorker;

namespace {

ObservationPoint point() {
  ObservationPoint p;
  p.want_range();
  p.want_minmax(1);
  p.want_percentile(1, 0.975f);
  p.want_histogram();
  return p;
}

bool same(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

}  // namespace

TEST_CASE("statistics through the worker equal the calling thread's, though the model overwrites its values") {
  at::manual_seed(3);
  std::vector<at::Tensor> batches;
  for (int k = 0; k < 12; ++k) batches.push_back(at::randn({1, 16, 12, 12}) * (k + 1));
  std::vector<ObservationPoint> direct(2), queued(2);
  for (auto* ps : {&direct, &queued})
    for (auto& p : *ps) p = point();
  for (const auto& b : batches) {
    direct[0].observe(b);
    direct[1].observe(b.relu());
  }
  {
    ObserveWorker w([&](int64_t id, const at::Tensor& x) { queued[static_cast<size_t>(id)].observe(x); }, 2,
                    1 << 17, 1 << 20);
    for (const auto& b : batches) {
      at::Tensor x = b.clone();
      w.observe(0, x);
      x.relu_();  // an in-place op after the observed call, as ReLU(inplace=True) is
      w.observe(1, x);
      x.fill_(std::nanf(""));  // the buffer reused for the next layer
    }
    CHECK(w.drain());
  }
  for (size_t i = 0; i < 2; ++i) {
    direct[i].finalize();
    queued[i].finalize();
    CHECK(direct[i].range()->avg_range == queued[i].range()->avg_range);
    CHECK(direct[i].range()->epoch_min == queued[i].range()->epoch_min);
    CHECK(same(direct[i].minmax(1)->max, queued[i].minmax(1)->max));
    CHECK(same(direct[i].percentile(1, 0.975f)->avg_ratio, queued[i].percentile(1, 0.975f)->avg_ratio));
    CHECK(direct[i].histogram()->histogram == queued[i].histogram()->histogram);
    CHECK(direct[i].histogram()->min_val == queued[i].histogram()->min_val);
  }
}

TEST_CASE("small activations go to the worker in order; large ones, and other dtypes, stay on the caller") {
  const auto caller = std::this_thread::get_id();
  std::vector<std::pair<int64_t, bool>> seen;  // (value, observed on the calling thread)
  {
    ObserveWorker w([&](int64_t, const at::Tensor& x) {
      seen.push_back({x.flatten()[0].item<int64_t>(), std::this_thread::get_id() == caller});
    }, 1, 100, 1000);
    w.observe(0, at::full({10}, 1.0f));
    w.observe(0, at::full({10}, 2.0f));
    w.observe(0, at::full({101}, 3.0f));                // above max_values: after the queue drained
    w.observe(0, at::full({10}, 4, at::kLong));         // not float: on the caller too
    w.observe(0, at::full({10, 2}, 5.0f).t());          // not contiguous: on the caller too
    w.observe(0, at::full({10}, 6.0f));
    CHECK(w.drain());
  }
  REQUIRE(seen.size() == 6);
  const std::vector<std::pair<int64_t, bool>> expected{{1, false}, {2, false}, {3, true}, {4, true}, {5, true},
                                                       {6, false}};
  CHECK(seen == expected);
}

// The idle worker spins a while before it sleeps, where it has a core of its own (the model's thread count
// plus one fits the CPUs), and the caller then wakes it only when it sleeps. Either way every item is
// observed once, in order, whether it arrives while the worker spins, works or sleeps, and the worker
// stops when destroyed mid-spin.
TEST_CASE("items arriving while the worker spins, works or sleeps are all observed, in order") {
  const int threads = at::get_num_threads();
  for (int model_threads : {1, 256}) {  // 1: it spins on a machine of 2 CPUs or more; 256: it never spins
    CAPTURE(model_threads);
    at::set_num_threads(model_threads);
    std::vector<float> seen;
    {
      ObserveWorker w([&](int64_t, const at::Tensor& x) { seen.push_back(x.flatten()[0].item<float>()); }, 1, 100,
                      1000);
      for (int k = 0; k < 60; ++k) {
        w.observe(0, at::full({4}, static_cast<float>(k)));
        // back to back, inside the spin (50 us), and past it (1 ms: the worker sleeps)
        if (k % 3 == 1) std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (k % 3 == 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      CHECK(w.drain());
      w.observe(0, at::full({4}, 60.0f));
      CHECK(w.drain());
    }  // destroyed right after an item: the worker is spinning, or about to
    std::vector<float> expected;
    for (int k = 0; k <= 60; ++k) expected.push_back(static_cast<float>(k));
    CHECK(seen == expected);
  }
  at::set_num_threads(threads);
}

TEST_CASE("the worker's error reaches the caller between batches, not inside the model's forward") {
  std::vector<float> seen;
  ObserveWorker w([&](int64_t, const at::Tensor& x) {
    seen.push_back(x.flatten()[0].item<float>());
    if (seen.back() == 2.0f) throw std::runtime_error("observer failed on 2");
  }, 1, 100, 1000);
  w.observe(0, at::full({4}, 1.0f));
  w.observe(0, at::full({4}, 2.0f));
  CHECK_FALSE(w.drain());
  CHECK_NOTHROW(w.observe(0, at::full({4}, 3.0f)));    // dropped: the run fails anyway
  CHECK_NOTHROW(w.observe(0, at::full({400}, 4.0f)));  // not observed on the caller either
  CHECK_FALSE(w.drain());
  CHECK_THROWS_WITH(w.check(), "observer failed on 2");
  CHECK(seen == std::vector<float>{1.0f, 2.0f});
}

TEST_CASE("the queue holds at most max_queued_values; the caller waits beyond") {
  std::atomic<int64_t> pending{0}, most{0};
  ObserveWorker w([&](int64_t, const at::Tensor& x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    pending -= x.numel();
  }, 1, 100, 250);
  for (int k = 0; k < 20; ++k) {
    int64_t now = pending += 100;
    if (now > most) most = now;
    w.observe(0, at::full({100}, 1.0f));
  }
  CHECK(w.drain());
  CHECK(pending == 0);
  // Two queued (200 values) plus the one being submitted: a third would exceed 250.
  CHECK(most <= 300);
  CHECK(most >= 200);
}

TEST_CASE("the schedule splits the threads after a first batch of small activations only") {
  const int threads = at::get_num_threads();
  if (threads < 2) at::set_num_threads(2);
  const int before = at::get_num_threads();
  auto run = [&](int64_t values, bool allowed) {
    const auto caller = std::this_thread::get_id();
    std::vector<bool> on_caller;
    qreport::pipeline::ObserveSchedule s([&](int64_t, const at::Tensor&) {
      on_caller.push_back(std::this_thread::get_id() == caller);
    }, 1, allowed);
    int during = 0;
    for (int batch = 0; batch < 3; ++batch) {
      s.observe(0, at::zeros({values}));
      s.batch_done();
      during = at::get_num_threads();
    }
    s.finish();
    CHECK(at::get_num_threads() == before);  // restored
    return std::make_tuple(s.split(), during, on_caller);
  };
  auto [split, during, on_caller] = run(1000, true);
  CHECK(split);
  CHECK(during == before - 1);
  CHECK(on_caller == std::vector<bool>{true, false, false});
  std::tie(split, during, on_caller) = run(int64_t{1} << 18, true);  // one large activation: no worker
  CHECK_FALSE(split);
  CHECK(during == before);
  CHECK(on_caller == std::vector<bool>{true, true, true});
  std::tie(split, during, on_caller) = run(1000, false);  // not allowed (a GPU run)
  CHECK_FALSE(split);
  CHECK(on_caller == std::vector<bool>{true, true, true});
  // Nothing observed (--detectors per_channel reads weights only): the model keeps every thread. It ran on
  // one fewer, for a worker with nothing to do: mobilenet_v2's calibration took 0.93 s instead of 0.60.
  qreport::pipeline::ObserveSchedule none([](int64_t, const at::Tensor&) {}, 0, true);
  for (int batch = 0; batch < 3; ++batch) none.batch_done();
  CHECK_FALSE(none.split());
  CHECK(at::get_num_threads() == before);
  none.finish();
  at::set_num_threads(threads);
}

TEST_CASE("a borrowable point's activation reaches the observer itself, not a copy; the others are copies") {
  std::vector<const void*> seen(2);
  ObserveWorker w([&](int64_t id, const at::Tensor& x) { seen[static_cast<size_t>(id)] = x.data_ptr(); }, 2, 1 << 17,
                  1 << 20);
  w.set_borrowable({1});
  const at::Tensor a = at::randn({1, 8, 4, 4}), b = at::randn({1, 8, 4, 4});
  w.observe(0, a);
  w.observe(1, b);
  REQUIRE(w.drain());
  CHECK(seen[0] != a.data_ptr());
  CHECK(seen[1] == b.data_ptr());
}
