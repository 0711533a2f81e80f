// Which rank of which job this process is, from the launcher's environment.
#include <cstdlib>
#include <string>

#include "common/errors.h"
#include "distributed/distributed.h"

namespace qreport::distributed {
namespace {

std::optional<std::string> var(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int number(const char* name, const std::string& text, int lo, int hi) {
  try {
    size_t used = 0;
    const long v = std::stol(text, &used);
    if (used == text.size() && v >= lo && v <= hi) return static_cast<int>(v);
  } catch (const std::exception&) {
  }
  throw UsageError(std::string("environment variable ") + name + "='" + text + "' is not a number in [" +
                   std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

}  // namespace

std::optional<Env> detect() {
  Env env;
  if (auto world = var("WORLD_SIZE")) {  // torchrun, torch.distributed.launch, or set by hand
    env.launcher = "torchrun";
    env.world = number("WORLD_SIZE", *world, 1, 1 << 20);
    auto rank = var("RANK");
    if (!rank) throw UsageError("WORLD_SIZE is set but RANK is not: launch with torchrun, or set both");
    env.rank = number("RANK", *rank, 0, env.world - 1);
    env.local_rank = var("LOCAL_RANK") ? number("LOCAL_RANK", *var("LOCAL_RANK"), 0, 1 << 20) : 0;
  } else if (auto ntasks = var("SLURM_NTASKS")) {  // srun
    env.launcher = "slurm";
    env.world = number("SLURM_NTASKS", *ntasks, 1, 1 << 20);
    auto procid = var("SLURM_PROCID");
    if (!procid) throw UsageError("SLURM_NTASKS is set but SLURM_PROCID is not: run qreport under srun");
    env.rank = number("SLURM_PROCID", *procid, 0, env.world - 1);
    env.local_rank = var("SLURM_LOCALID") ? number("SLURM_LOCALID", *var("SLURM_LOCALID"), 0, 1 << 20) : 0;
  } else {
    return std::nullopt;
  }
  if (env.world == 1) return std::nullopt;
  auto addr = var("MASTER_ADDR");
  if (!addr)
    throw UsageError("a job of " + std::to_string(env.world) + " ranks (" + env.launcher +
                     ") needs MASTER_ADDR, the host of rank 0" +
                     (env.launcher == "slurm" ? ": export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" "
                                                "| head -n1) in the batch script"
                                              : ""));
  env.master_addr = *addr;
  if (auto port = var("MASTER_PORT")) env.master_port = number("MASTER_PORT", *port, 1, 65535);
  if (env.launcher == "torchrun" && var("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True") {
    env.agent_store = true;
    env.key_prefix = "qreport/" + var("TORCHELASTIC_RUN_ID").value_or("run") + "/" +
                     var("TORCHELASTIC_RESTART_COUNT").value_or("0") + "/";
  }
  return env;
}

}  // namespace qreport::distributed
