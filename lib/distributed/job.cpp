// The job's rendezvous and reduction on c10d: a TCPStore (served by rank 0) for joining, fingerprints,
// heartbeats and failure notices; a ProcessGroupGloo for the one collective that moves statistics.
// Every wait polls the store so that it can give up on a rank that failed, vanished or never came.
#include "distributed/distributed.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "common/errors.h"
#include "common/text.h"

#if defined(USE_C10D_GLOO) && __has_include(<gloo/config.h>) && \
    __has_include(<torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>)
#define QREPORT_HAS_C10D 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(C10_USE_GLOG) && __has_include(<glog/logging.h>)
#include <glog/logging.h>
#define QREPORT_QUIET_GLOG 1
#endif
#endif

namespace qreport::distributed {

#if defined(QREPORT_HAS_C10D)

bool available() { return true; }

namespace {

using Clock = std::chrono::steady_clock;

// "3 s", "300 s", "2.5 s" (to_string's six decimals cut to four characters gave "300." for 300 s).
std::string seconds(std::chrono::milliseconds t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(t.count()) / 1000.0);
  return buf;
}

// c10d logs its own view of every failure (a socket timeout, a closed peer) through glog on stderr, before
// qreport's one line that names the rank and the cause. Those lines are for PyTorch's developers: off.
void quiet_c10d_logging() {
#if defined(QREPORT_QUIET_GLOG)
  FLAGS_minloglevel = google::GLOG_FATAL;
#endif
}

// Runs one step of the job: a JobError or an interruption passes through as it is; any other failure (c10d's
// own exceptions) becomes a JobError that names the step, with c10d's first line as the cause.
template <class Body>
auto or_job_error(const std::string& step, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const JobError&) {
    throw;
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    throw JobError(step + ": " + first_line(e.what()));
  }
}

const char* const kInterrupted = "interrupted while the job's ranks were meeting or waiting for each other; no report written";

// Waits until rank 0's store accepts connections (or the deadline). c10d's client, started before the
// server listens, backs off a whole second before retrying: on a short job that second was a fifth of
// the run. A plain TCP probe every 10 ms connects as soon as the server is up.
bool wait_for_listener(const std::string& host, int port, Clock::time_point deadline) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) return true;  // c10d says why
  bool up = false;
  while (!up && Clock::now() < deadline) {
    if (interrupt_requested()) {
      freeaddrinfo(res);
      throw Interrupted(kInterrupted);
    }
    for (addrinfo* a = res; a && !up; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd < 0) continue;
      up = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0;
      ::close(fd);
    }
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  freeaddrinfo(res);
  return up;
}

std::string list(const std::vector<int>& ranks) {
  std::string s;
  for (int r : ranks) s += (s.empty() ? "" : ", ") + std::to_string(r);
  return s;
}

// c10d's calls run on a thread of their own while the rank's thread waits for them with a deadline and an
// eye on Ctrl-C. c10d bounds the waits it knows of, but its TCPStore client blocks in recv() without a
// bound when the peer accepts and never answers: a port held by another program, a SIGSTOPped rank 0.
// A call that overruns, or a Ctrl-C, abandons the thread where it is blocked (the rank is about to
// exit); every task holds its own references to the store and the process group, so nothing it uses is
// freed under it.
class Caller {
 public:
  Caller() : state_(std::make_shared<State>()), thread_([s = state_] { s->loop(); }) {}
  ~Caller() {
    if (abandoned_) {
      thread_.detach();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(state_->m);
      state_->stop = true;
    }
    state_->cv.notify_one();
    thread_.join();
  }
  Caller(const Caller&) = delete;
  Caller& operator=(const Caller&) = delete;

  // f() on the c10d thread; JobError(overran()) past `deadline`, Interrupted on Ctrl-C.
  template <class F>
  auto call(F f, Clock::time_point deadline, const std::function<std::string()>& overran) -> decltype(f()) {
    if (abandoned_) throw JobError(overran());
    using R = decltype(f());
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    std::future<R> done = task->get_future();
    {
      std::lock_guard<std::mutex> lock(state_->m);
      state_->queue.emplace_back([task] { (*task)(); });
    }
    state_->cv.notify_one();
    while (done.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) {
      if (interrupt_requested()) {
        abandoned_ = true;
        throw Interrupted(kInterrupted);
      }
      if (Clock::now() >= deadline) {
        abandoned_ = true;
        throw JobError(overran());
      }
    }
    return done.get();
  }
  bool abandoned() const { return abandoned_; }

 private:
  struct State {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::function<void()>> queue;
    bool stop = false;
    void loop() {
      while (true) {
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(m);
          cv.wait(lock, [this] { return stop || !queue.empty(); });
          if (queue.empty()) return;
          task = std::move(queue.front());
          queue.pop_front();
        }
        task();
      }
    }
  };
  std::shared_ptr<State> state_;
  std::thread thread_;
  bool abandoned_ = false;
};

}  // namespace

struct Job::Impl {
  Env env;
  std::chrono::milliseconds timeout;
  std::string where;  // "host:port" of rank 0's store
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  bool joining = true;  // until every rank has joined: a store that does not answer may not be rank 0's
  Caller caller;        // last: its thread stops before the store and the process group go

  std::string key(const std::string& what, int r) const { return env.key_prefix + what + "/" + std::to_string(r); }

  // One store operation, given up when rank 0's store does not answer within the timeout.
  template <class F>
  auto store_call(F f) -> decltype(f()) {
    return caller.call(std::move(f), Clock::now() + timeout, [this] {
      if (joining)
        return "rank 0's store at " + where + " accepted the connection but did not answer within " +
               seconds(timeout) + ": rank 0 is stopped or hung, or another program holds that port (--dist-timeout)";
      return "rank 0's store at " + where + " did not answer within " + seconds(timeout) +
             ": rank 0 is stopped or hung, or its machine is unreachable (--dist-timeout)";
    });
  }
  bool has(const std::string& k) {
    return store_call([s = store, k] { return s->check({k}); });
  }
  std::string get(const std::string& k) {
    return store_call([s = store, k] {
      auto v = s->get(k);
      return std::string(v.begin(), v.end());
    });
  }
  void set(const std::string& k, const std::string& v) {
    store_call([s = store, k, v] { s->set(k, std::vector<uint8_t>(v.begin(), v.end())); });
  }

  // A failure another rank published: acknowledge it (rank 0 keeps the store up until read) and throw.
  void throw_if_failed() {
    for (int r = 0; r < env.world; ++r) {
      if (r == env.rank || !has(key("failed", r))) continue;
      const std::string why = get(key("failed", r));
      set(key("ack", env.rank), "1");
      throw JobError("rank " + std::to_string(r) + " failed: " + why);
    }
  }

  // Waits until every rank has published key `what`. `liveness`: a rank is given up when its heartbeat
  // has not changed for `timeout` (it may legitimately take long); otherwise when `timeout` has passed.
  void wait_all(const std::string& what, const std::string& never, bool liveness) {
    std::vector<bool> seen(env.world, false);
    std::vector<std::string> beat(env.world);
    std::vector<Clock::time_point> since(env.world, Clock::now());
    while (true) {
      throw_if_failed();
      std::vector<int> missing, stale;
      for (int r = 0; r < env.world; ++r) {
        if (seen[r] || (seen[r] = has(key(what, r)))) continue;
        missing.push_back(r);
        if (liveness) {
          std::string b = has(key("beat", r)) ? get(key("beat", r)) : "";
          if (b != beat[r]) beat[r] = b, since[r] = Clock::now();
        }
        if (Clock::now() - since[r] > timeout) stale.push_back(r);
      }
      if (missing.empty()) return;
      if (!stale.empty()) {
        std::string where_at = liveness && !beat[stale[0]].empty() ? " (last at batch " + beat[stale[0]] + ")" : "";
        throw JobError("rank" + std::string(stale.size() > 1 ? "s " : " ") + list(stale) + " " + never + " within " +
                       seconds(timeout) + where_at + ": killed, stuck, or never started (--dist-timeout)");
      }
      if (interrupt_requested()) throw Interrupted(kInterrupted);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Rank 0 serves the store: after its last word (a failure, or the job's end) it keeps the store up
  // until every other rank has read it, or for a bounded time.
  void await_acks(std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + std::min(timeout, limit);
    while (Clock::now() < deadline && !interrupt_requested()) {
      bool all = true;
      for (int r = 1; r < env.world && all; ++r) all = has(key("ack", r));
      if (all) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
};

Job::Job(const Env& env, std::chrono::milliseconds timeout) : impl_(std::make_unique<Impl>()) {
  quiet_c10d_logging();
  impl_->env = env;
  impl_->timeout = timeout;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  impl_->where = where;
  // Joining, all of it, within --dist-timeout: reaching the store, every rank's arrival, the process group.
  const auto deadline = Clock::now() + timeout;
  auto silent = [where, timeout] {
    return "rank 0's store at " + where + " accepted the connection but did not answer within " + seconds(timeout) +
           ": rank 0 is stopped or hung, or another program holds that port (--dist-timeout)";
  };
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env.master_port);
  o.isServer = env.rank == 0 && !env.agent_store;  // else rank 0 tried to bind the agent's port and logged it
  o.numWorkers = env.world;
  o.waitWorkers = false;  // joining is checked below, naming the ranks that never come
  o.timeout = timeout;
  or_job_error(env.rank == 0 ? "cannot serve the job's store at " + where
                             : "cannot reach rank 0's store at " + where + " within " + seconds(timeout),
               [&] {
    if (!o.isServer && !wait_for_listener(env.master_addr, env.master_port, deadline))
      throw JobError("cannot reach rank 0's store at " + where + " within " + seconds(timeout) +
                     ": rank 0 never started, or MASTER_ADDR/MASTER_PORT point elsewhere (--dist-timeout)");
    impl_->store = impl_->caller.call(
        [host = env.master_addr, o] { return c10::make_intrusive<c10d::TCPStore>(host, o); }, deadline, silent);
  });
  or_job_error("the job's ranks could not meet at " + where, [&] {
    impl_->set(impl_->key("join", env.rank), "1");
    impl_->wait_all("join", "never joined", false);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->pg = impl_->caller.call(
        [store = impl_->store, rank = env.rank, world = env.world, options] {
          return c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("gloo", store),
                                                            rank, world, options);
        },
        std::max(deadline, Clock::now() + timeout), silent);
    impl_->joining = false;
  });
}

Job::~Job() = default;

int Job::rank() const { return impl_->env.rank; }
int Job::world() const { return impl_->env.world; }

void Job::check_same(const std::string& what, const std::string& value) {
  or_job_error("lost the job's store (rank 0)", [&] {
    impl_->set(impl_->key("same-" + what, impl_->env.rank), value);
    impl_->wait_all("same-" + what, "never reached the start", false);
    const std::string first = impl_->get(impl_->key("same-" + what, 0));
    for (int r = 1; r < impl_->env.world; ++r) {
      const std::string v = impl_->get(impl_->key("same-" + what, r));
      if (v != first)
        throw JobError("rank " + std::to_string(r) + " has another " + what + " than rank 0 (" + v + " against " +
                       first + "): every rank must run the same model with the same settings and data");
    }
  });
}

void Job::beat(int64_t done) {
  or_job_error("lost the job's store (rank 0)", [&] {
    impl_->set(impl_->key("beat", impl_->env.rank), std::to_string(done));
  });
}

void Job::fail(const std::string& message, bool wait_for_others) noexcept {
  try {
    if (impl_->caller.abandoned()) return;  // the store no longer answers: nobody can be told
    impl_->set(impl_->key("failed", impl_->env.rank), message);
    if (impl_->env.rank == 0 && wait_for_others) impl_->await_acks(std::chrono::milliseconds(10000));
  } catch (...) {
  }
}

void Job::finish() {
  if (impl_->env.rank != 0) return;
  try {
    impl_->set(impl_->key("finished", 0), "1");
    impl_->await_acks(std::chrono::milliseconds(10000));
  } catch (const std::exception&) {
    // The report is written; a rank that cannot be told exits 4 on its own when the store goes.
  }
}

void Job::wait_for_rank0() {
  if (impl_->env.rank == 0) return;
  or_job_error("lost the job's store (rank 0) before rank 0 finished the report", [&] {
    // No bound on the whole wait: rank 0 computes the report meanwhile, and its store answering each poll
    // (within --dist-timeout) is the sign that it is alive.
    while (true) {
      impl_->throw_if_failed();
      if (impl_->has(impl_->key("finished", 0))) {
        impl_->set(impl_->key("ack", impl_->env.rank), "1");
        return;
      }
      if (interrupt_requested()) throw Interrupted(kInterrupted);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
}

std::vector<std::string> Job::gather(const std::string& bytes) {
  const int world = impl_->env.world;
  return or_job_error("the statistics reduction failed", [&] {
    // Everyone done calibrating (or a failure named) before the collective, which cannot say who is gone.
    impl_->set(impl_->key("done", impl_->env.rank), "1");
    impl_->wait_all("done", "stopped making progress", true);
    // The collectives carry Gloo's own timeout (--dist-timeout); the caller's deadline backs it up.
    auto collective = [this](auto f) {
      return impl_->caller.call(std::move(f), Clock::now() + impl_->timeout + std::chrono::seconds(5), [this] {
        return "the statistics reduction did not finish within " + seconds(impl_->timeout) + " (--dist-timeout)";
      });
    };
    std::vector<at::Tensor> in{at::full({1}, static_cast<int64_t>(bytes.size()), at::kLong)};
    std::vector<std::vector<at::Tensor>> sizes(1);
    for (int r = 0; r < world; ++r) sizes[0].push_back(at::empty({1}, at::kLong));
    collective([pg = impl_->pg, sizes, in]() mutable {
      pg->allgather(sizes, in)->wait();
      return 0;
    });
    int64_t longest = 0;
    for (const auto& t : sizes[0]) longest = std::max(longest, t.item<int64_t>());
    at::Tensor buf = at::zeros({std::max<int64_t>(longest, 1)}, at::kByte);
    std::memcpy(buf.data_ptr<uint8_t>(), bytes.data(), bytes.size());
    // The statistics themselves go to rank 0 only: a rank sends its own once, whatever the job's size.
    std::vector<at::Tensor> in2{buf};
    std::vector<std::vector<at::Tensor>> out(impl_->env.rank == 0 ? 1 : 0);
    if (impl_->env.rank == 0)
      for (int r = 0; r < world; ++r) out[0].push_back(at::empty_like(buf));
    collective([pg = impl_->pg, out, in2]() mutable {
      pg->gather(out, in2)->wait();
      return 0;
    });
    std::vector<std::string> result;
    for (int r = 0; impl_->env.rank == 0 && r < world; ++r)
      result.emplace_back(reinterpret_cast<const char*>(out[0][r].data_ptr<uint8_t>()),
                          static_cast<size_t>(sizes[0][r].item<int64_t>()));
    return result;
  });
}

#else  // no c10d Gloo in this LibTorch

bool available() { return false; }
struct Job::Impl {};
Job::Job(const Env&, std::chrono::milliseconds) {
  throw UsageError("this qreport was built with a LibTorch without c10d's Gloo process group: it runs as one "
                   "process only (unset RANK/WORLD_SIZE or SLURM_NTASKS)");
}
Job::~Job() = default;
int Job::rank() const { return 0; }
int Job::world() const { return 1; }
void Job::check_same(const std::string&, const std::string&) {}
void Job::beat(int64_t) {}
void Job::fail(const std::string&, bool) noexcept {}
void Job::finish() {}
void Job::wait_for_rank0() {}
std::vector<std::string> Job::gather(const std::string& bytes) { return {bytes}; }

#endif

}  // namespace qreport::distributed
