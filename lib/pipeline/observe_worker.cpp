#include "pipeline/observe_worker.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace qreport::pipeline {
namespace {
// Activations up to 128 Ki values go to the worker (above that the observer kernels run on every core, on
// the calling thread), and a run uses one only where none is larger; at most 16 Mi values (64 MiB of
// copies) wait for it.
constexpr int64_t kWorkerMaxValues = int64_t{1} << 17;
constexpr int64_t kQueuedValues = int64_t{1} << 24;
// How long the idle worker spins before it sleeps. Long enough to cover the gap between two observed calls
// of a small batch's forward, and between two such batches; it spins on the core the model left it (the
// model runs on one thread fewer), so nothing else waits for that core.
constexpr auto kSpin = std::chrono::microseconds(200);

// CPUs this process may run on (its affinity mask), or 1 when unknown.
int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}
}  // namespace

ObserveWorker::ObserveWorker(Observe observe, size_t points, int64_t max_values, int64_t max_queued_values)
    : observe_(std::move(observe)), max_values_(max_values), max_queued_values_(max_queued_values), spare_(points) {
  // Spinning pays only on a core nobody else wants: on an oversubscribed machine it would take time from
  // the model's threads. The model runs on the caller's thread count (ObserveSchedule lowered it first).
  spin_ = at::get_num_threads() + 1 <= usable_cpus();
  thread_ = std::thread([this] { run(); });
}

void ObserveWorker::set_borrowable(const std::set<int64_t>& ids) {
  borrowable_.assign(spare_.size(), 0);
  for (int64_t id : ids)
    if (id >= 0 && static_cast<size_t>(id) < borrowable_.size()) borrowable_[static_cast<size_t>(id)] = 1;
}

ObserveWorker::~ObserveWorker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    queue_.clear();
    queued_.store(0, std::memory_order_relaxed);
  }
  wake_.notify_one();
  thread_.join();
}

at::Tensor ObserveWorker::buffer_for(int64_t id, const at::Tensor& x) {
  auto& spare = spare_[static_cast<size_t>(id)];
  while (!spare.empty()) {
    at::Tensor t = std::move(spare.back());
    spare.pop_back();
    if (t.sizes() == x.sizes()) return t;  // a shape the point no longer has is dropped
  }
  return at::empty(x.sizes(), x.options().memory_format(c10::MemoryFormat::Contiguous));
}

void ObserveWorker::observe(int64_t id, const at::Tensor& x) {
  const bool small = x.is_cpu() && x.scalar_type() == at::kFloat && x.is_contiguous() && x.numel() <= max_values_ &&
                     id >= 0 && static_cast<size_t>(id) < spare_.size();
  if (!small) {  // observed here, with every core, after what is queued (each point keeps its order)
    if (drain()) observe_(id, x);
    return;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (queued_values_ + x.numel() > max_queued_values_ && !queue_.empty()) {
    ++waiting_;
    done_.wait(lock, [&] { return queued_values_ + x.numel() <= max_queued_values_ || queue_.empty() || error_; });
    --waiting_;
  }
  if (error_) return;
  if (borrowable(id)) {
    queue_.push_back({id, x});
  } else {
    at::Tensor copy = buffer_for(id, x);
    lock.unlock();
    std::memcpy(copy.data_ptr(), x.data_ptr(), static_cast<size_t>(x.numel()) * sizeof(float));
    lock.lock();
    queue_.push_back({id, std::move(copy)});
  }
  queued_values_ += x.numel();
  queued_.store(queue_.size(), std::memory_order_release);
  const bool asleep = sleeping_;
  release_borrowed(lock);
  if (asleep) wake_.notify_one();
}

void ObserveWorker::release_borrowed(std::unique_lock<std::mutex>& lock) {
  releasing_.swap(release_);  // both keep their capacity: no allocation once grown
  lock.unlock();
  releasing_.clear();
}

bool ObserveWorker::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  ++waiting_;
  done_.wait(lock, [this] { return (queue_.empty() && !busy_) || error_; });
  --waiting_;
  const bool ok = !error_;
  release_borrowed(lock);
  return ok;
}

void ObserveWorker::check() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
}

void ObserveWorker::run() {
  // Behind inference: the model's threads (the caller and its OpenMP team) win a contended core, and this
  // thread uses the time they leave. Its observer kernels run on this thread alone (a parallel region
  // opened from here would start a second OpenMP team on the same cores).
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  at::init_num_threads();
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  c10::InferenceMode inference;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (spin_ && queue_.empty() && !stop_) {
      // Spin a while before sleeping. stop_ is not watched here: a destructor's notify while the worker
      // spins is lost, and the wait's predicate below sees stop_ once the spin ends (at most kSpin).
      lock.unlock();
      const auto until = std::chrono::steady_clock::now() + kSpin;
      for (int i = 1; queued_.load(std::memory_order_acquire) == 0; ++i) {
        cpu_relax();
        if (i % 64 == 0 && std::chrono::steady_clock::now() >= until) break;
      }
      lock.lock();
    }
    sleeping_ = true;
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    sleeping_ = false;
    if (stop_) return;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    queued_.store(queue_.size(), std::memory_order_relaxed);
    busy_ = true;
    lock.unlock();
    try {
      if (!error_) observe_(item.id, item.copy);  // error_ is written by this thread alone
    } catch (...) {
      lock.lock();
      error_ = std::current_exception();
      lock.unlock();
    }
    lock.lock();
    busy_ = false;
    queued_values_ -= item.copy.numel();
    (borrowable(item.id) ? release_ : spare_[static_cast<size_t>(item.id)]).push_back(std::move(item.copy));
    if (waiting_ > 0) done_.notify_all();
  }
}

ObserveSchedule::ObserveSchedule(ObserveWorker::Observe observe, size_t points, bool allowed)
    : observe_(std::move(observe)), points_(points), threads_(at::get_num_threads()),
      decided_(!allowed || threads_ < 2) {}

ObserveSchedule::~ObserveSchedule() {
  worker_.reset();
  if (at::get_num_threads() != threads_) at::set_num_threads(threads_);
}

void ObserveSchedule::observe(int64_t id, const at::Tensor& x) {
  if (worker_) return worker_->observe(id, x);
  largest_ = std::max(largest_, x.numel());
  observe_(id, x);
}

void ObserveSchedule::batch_done() {
  if (worker_) worker_->check();
  if (decided_) return;
  decided_ = true;
  // Nothing observed (weights only) leaves no work for a worker: the model keeps every thread.
  if (largest_ == 0 || largest_ > kWorkerMaxValues) return;
  at::set_num_threads(threads_ - 1);
  split_ = true;
  worker_ = std::make_unique<ObserveWorker>(observe_, points_, kWorkerMaxValues, kQueuedValues);
  if (borrowable_) worker_->set_borrowable(borrowable_());
}

void ObserveSchedule::finish() {
  if (worker_) {
    worker_->drain();
    worker_->check();
  }
  worker_.reset();
  if (at::get_num_threads() != threads_) at::set_num_threads(threads_);
}

}  // namespace qreport::pipeline
