#include "pipeline/whole_model_passes.h"

#include <algorithm>

#include "pipeline/sensitivity.h"
#include "pipeline/simulate.h"

namespace qreport::pipeline {

void run_whole_model_passes(const WholeModelPasses& in, const AnalyzeOptions& o, report::Report& rep,
                            StageClock& clock) {
  if (o.simulate) {
    const std::unique_ptr<RunHost> host = in.make_host();
    SimulationInput sim;
    sim.model = in.model;
    sim.host = host.get();
    sim.stats = in.stats;
    sim.mapping = &rep.qconfig;
    sim.backend = o.error.backend;
    sim.batches = in.simulate_batches;
    sim.batch = in.args_of;
    sim.on_batch = [&](size_t done, size_t total) {
      in.release(done - 1);
      if (o.on_simulate_batch) o.on_simulate_batch(done, total);
    };
    rep.simulation = simulate(sim, &rep.warnings);
    clock.lap("simulate");
  }
  if (o.sensitivity) {
    const std::unique_ptr<RunHost> host = in.make_host();
    SensitivityInput sens;
    sens.model = in.model;
    sens.host = host.get();
    sens.scheme = o.sensitivity_scheme;
    sens.batches = std::min(static_cast<size_t>(o.sensitivity_batches), in.sensitivity_batches.size());
    sens.batch = [&](size_t k) { return in.args_of(in.sensitivity_batches[k]); };
    sens.target_sqnr_db = o.target_sqnr_db;
    sens.disable_one = o.sensitivity_disable_one;
    sens.on_run = o.on_sensitivity_run;
    measure_sensitivity(sens, rep);
    clock.lap("sensitivity");
  }
}

}  // namespace qreport::pipeline
