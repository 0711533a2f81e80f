// Observation of small activations on a second thread, overlapped with the model's next layers.
//
// With small batches the observers' fixed costs per call decide the run (mobilenet_v2 on one 64x64 image:
// about 140 observed calls per batch, 16 us each, on the critical path of an inference that leaves the
// second core idle most of the time). ObserveWorker copies a small activation into a buffer of its own (a
// later in-place op, ReLU6(inplace=True) say, would overwrite the original), queues it and returns; one
// worker thread, at a lower scheduling priority than inference, observes the queue in order. Each point
// therefore sees its batches in the same order as on the calling thread, and its statistics are the same
// bit for bit. Large activations, whose observer kernels use every core, are observed on the calling
// thread once the queue has drained.
//
// Idle, the worker spins for up to 200 us before it sleeps, where it has a core of its own, so that the
// caller hands it work without a system call; and the activations it read in place are released on the
// caller's thread, whose heap they came from (mobilenet_v2, 300 batches of one 64x64 image: futex calls
// 37.7k -> 5.8k, 2.12 -> 1.99 s over 11 interleaved runs; docs/performance.md, round 11).
//
// ObserveSchedule decides whether to use one: only where every activation is small (the model's own ops
// and the observers' kernels then run below their parallel grains, and a second thread of the model's
// mostly spins), measured on the first batch, and only with two or more threads. From the second batch on
// the model then runs on one thread fewer and the worker takes the one left: a third thread beside a
// two-thread OpenMP team slowed calibration down (2.5-3.3 s against 2.0-2.1 s on mobilenet_v2 with
// batches of one 64x64 image, 2 cores), the split sped it up (1.0-1.2 s).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <ATen/core/Tensor.h>

namespace qreport::pipeline {

class ObserveWorker {
 public:
  using Observe = std::function<void(int64_t id, const at::Tensor& x)>;
  // Activations of at most max_values contiguous float values go to the worker, and at most
  // max_queued_values wait for it (the caller waits beyond that: memory stays bounded however far the
  // worker falls behind); `points` bounds the ids.
  ObserveWorker(Observe observe, size_t points, int64_t max_values, int64_t max_queued_values);
  ~ObserveWorker();  // stops the worker; whatever is still queued is dropped (the run failed)
  ObserveWorker(const ObserveWorker&) = delete;
  ObserveWorker& operator=(const ObserveWorker&) = delete;

  // Called by the instrumented graph's observe op, on the thread running the model. Never throws the
  // worker's error (it would pass for the model's own): once there is one, activations are dropped.
  void observe(int64_t id, const at::Tensor& x);
  // Points whose activations no later op writes (Instrumenter::stable_observed_ids): queued as they are,
  // without a copy. The caller's reference keeps them alive until observed.
  void set_borrowable(const std::set<int64_t>& ids);
  // Waits until every queued activation has been observed, or the worker failed; false if it failed.
  bool drain();
  // Rethrows the worker's first error, if any (between batches, outside the model's forward).
  void check();

 private:
  struct Item {
    int64_t id;
    at::Tensor copy;  // or the activation itself, where the point is borrowable
  };
  void run();
  at::Tensor buffer_for(int64_t id, const at::Tensor& x);  // under mutex_
  bool borrowable(int64_t id) const { return !borrowable_.empty() && borrowable_[static_cast<size_t>(id)]; }

  Observe observe_;
  int64_t max_values_;
  std::mutex mutex_;
  std::condition_variable wake_;  // the worker: work arrived, or stop
  std::condition_variable done_;  // an item was observed (drain() and a full queue wait on it)
  std::deque<Item> queue_;
  int64_t max_queued_values_;
  int64_t queued_values_ = 0;
  int waiting_ = 0;  // callers waiting on done_
  bool busy_ = false;  // the worker holds an item
  bool stop_ = false;
  // The worker waits for work by spinning a while before it sleeps on wake_: with small batches an item
  // arrives every few microseconds to a few hundred, and waking a sleeping thread costs the model's thread
  // a system call each time. `sleeping_` (under mutex_): only then does the caller notify; `queued_`
  // mirrors the queue's length for the spinning worker, which reads it without the mutex.
  bool sleeping_ = false;
  std::atomic<size_t> queued_{0};
  bool spin_;  // the worker has a core of its own: the model's threads and it fit the CPUs this process may use
  std::exception_ptr error_;
  // Each point's copies the worker has finished with, reused so the per-batch path allocates nothing.
  std::vector<std::vector<at::Tensor>> spare_;
  std::vector<char> borrowable_;  // per point: queue the activation itself (empty: none); set before any item
  // Borrowed activations the worker is done with, released on the model's thread (observe, drain): the
  // model's thread allocated them, and a free from the worker would take the C library's lock of that
  // heap, which the model's thread holds for its own allocations many times per batch.
  std::vector<at::Tensor> release_, releasing_;
  void release_borrowed(std::unique_lock<std::mutex>& lock);  // the caller's thread; lock held on entry, not on return
  std::thread thread_;
};

class ObserveSchedule {
 public:
  // `allowed`: the run may use a worker (a CPU run); the thread count is LibTorch's current one.
  ObserveSchedule(ObserveWorker::Observe observe, size_t points, bool allowed);
  ~ObserveSchedule();  // restores the model's thread count
  void observe(int64_t id, const at::Tensor& x);
  void batch_done();  // after each batch: the first one decides; rethrows the worker's error
  void finish();      // every observation made (or the worker's error rethrown); thread count restored
  bool split() const { return split_; }  // the model ran on one thread fewer, a worker observing
  // The points whose activations the worker may take without a copy (ObserveWorker::set_borrowable),
  // asked once, when a worker starts.
  void set_borrowable(std::function<std::set<int64_t>()> ids) { borrowable_ = std::move(ids); }

 private:
  ObserveWorker::Observe observe_;
  size_t points_;
  int threads_;
  bool decided_;
  int64_t largest_ = 0;
  bool split_ = false;
  std::unique_ptr<ObserveWorker> worker_;
  std::function<std::set<int64_t>()> borrowable_;
};

}  // namespace qreport::pipeline
