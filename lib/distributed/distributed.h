// Distributed analyze: one qreport process per rank, launched by torchrun or Slurm (their environment
// variables say which rank this is), meeting through c10d's TCPStore, reducing statistics with a
// c10d ProcessGroupGloo collective. No protocol or launcher of qreport's own (docs/distributed.md).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qreport::distributed {

struct Env {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 29500;
  std::string launcher;  // "torchrun" (RANK/WORLD_SIZE) or "slurm" (SLURM_PROCID/SLURM_NTASKS)
  // torchrun's agent already serves a TCPStore at MASTER_ADDR:MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True):
  // every rank is its client, as PyTorch's own rendezvous does, and the keys carry the run id and restart
  // count, since that store outlives one attempt of the job.
  bool agent_store = false;
  std::string key_prefix = "qreport/";
};

// The job this process is a rank of, from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT) or Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; MASTER_ADDR/MASTER_PORT exported
// by the batch script). nullopt for a single process (no such variables, or a world of 1). Inconsistent
// variables are a UsageError.
std::optional<Env> detect();

// Whether this qreport was built with c10d's Gloo process group.
bool available();

// One rank's membership in the job. Every wait is bounded by `timeout`; a rank that publishes a failure,
// stops making progress for longer than `timeout`, or never joins makes every other rank throw JobError
// naming it, and so does a store (rank 0) that stops answering. A Ctrl-C during any wait throws
// Interrupted within a few hundredths of a second.
class Job {
 public:
  Job(const Env& env, std::chrono::milliseconds timeout);
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int rank() const;
  int world() const;
  // Publishes this rank's `value` of `what` and checks that every rank has the same; JobError names the
  // first rank that differs. `describe` turns a value into words for that message.
  void check_same(const std::string& what, const std::string& value);
  // Progress heartbeat (after each batch): a rank whose count stops changing for `timeout` is given up.
  void beat(int64_t done);
  // This rank failed with `message`: tells the others, who throw JobError naming this rank. Rank 0, which
  // serves the store, then waits (up to 10 s) until they have read it, unless !wait_for_others (Ctrl-C).
  void fail(const std::string& message, bool wait_for_others = true) noexcept;
  // Rank 0, after writing the report: tells the others the job succeeded, and waits (up to 10 s) until
  // they have read it.
  void finish();
  // Every other rank, after the reduction: waits for rank 0's last word; JobError when rank 0 failed
  // (writing the report, say) or its store stopped answering.
  void wait_for_rank0();
  // Every rank's bytes, in rank order, on rank 0 (empty elsewhere): the sizes through a c10d allgather,
  // then the bytes through a c10d gather to rank 0.
  std::vector<std::string> gather(const std::string& bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qreport::distributed
