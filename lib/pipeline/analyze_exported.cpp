// qreport analyze on a torch.export program: the same stages as analyze.cpp's TorchScript run (one plan,
// the same observers, detectors, layer-error pass and reports), with lib/exported's interpreter in place
// of the instrumented forward, and the same --simulate and --sensitivity passes through RunHost. CPU only,
// one process; --device cuda and distributed runs are refused (exit 2) until they are wired (docs/design.md,
// "Exported programs").
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <numeric>
#include <future>
#include <map>

#include "common/errors.h"
#include "common/text.h"
#include "pipeline/batch_checks.h"
#include "pipeline/exported_front.h"
#include "pipeline/job_run.h"
#include "pipeline/layer_capture.h"
#include "pipeline/layer_error.h"
#include "pipeline/observe_worker.h"
#include "pipeline/plan.h"
#include "pipeline/stage_clock.h"
#include "pipeline/whole_model_passes.h"
#include "stats/stats.h"

namespace qreport::pipeline {
namespace {

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

exported::Side side_of(Side s) { return s == Side::Input ? exported::Side::Input : exported::Side::Output; }

// Forward's arguments of one batch in the program's input order: positional as saved, or a dict's
// entries by the user inputs' names.
std::vector<c10::IValue> exported_args(const exported::Program& program, const calibration::Batch& batch,
                                       size_t index) {
  std::vector<c10::IValue> args;
  const auto& names = program.input_names();
  if (batch.named.empty()) {
    for (const auto& t : batch.positional) args.emplace_back(t);
  } else {
    for (const auto& name : names) {
      auto it = std::find_if(batch.named.begin(), batch.named.end(), [&](const auto& e) { return e.first == name; });
      if (it == batch.named.end())
        throw InputError("calibration batch " + std::to_string(index) + " has no argument '" + name +
                         "' (the exported program takes " + join(names, ", ") + ")");
      args.emplace_back(it->second);
    }
    for (const auto& [name, t] : batch.named)
      if (std::find(names.begin(), names.end(), name) == names.end())
        throw InputError("calibration batch " + std::to_string(index) + " has an argument '" + name +
                         "' the exported program does not take (it takes " + join(names, ", ") + ")");
  }
  if (args.size() != names.size())
    throw InputError("calibration batch " + std::to_string(index) + " has " + std::to_string(args.size()) +
                     " argument(s); the exported program takes " + std::to_string(names.size()) + " (" +
                     join(names, ", ") + ")");
  return args;
}

// The dtype of the program's floating parameters (the first one found), as parameter_dtype() for TorchScript.
// Whether every call of `site` is the module's own (not a functional application inside a parent's call).
bool own_calls(const exported::Program& program, const std::string& site) {
  return std::none_of(program.calls().begin(), program.calls().end(),
                      [&](const exported::ModuleCall& c) { return c.fqn == site && !c.functional.empty(); });
}

std::optional<at::ScalarType> state_dtype(const exported::Program& program, const model::ModelView& view) {
  for (const auto& node : view.tree().nodes()) {
    const at::Tensor w = program.state(node.fqn.empty() ? "weight" : node.fqn + ".weight");
    if (w.defined() && w.is_floating_point()) return w.scalar_type();
  }
  return std::nullopt;
}

// The error detector's second pass on the interpreter: observers cleared, the layers' sites observed,
// each layer applied alone through the node that applies its weight.
class ExportedLayerHost : public LayerHost {
 public:
  ExportedLayerHost(exported::Program& program, const exported::ExportedModel& model, const ExportedFront& front,
                    std::function<std::vector<at::Tensor>(size_t)> batch)
      : program_(program), model_(model), front_(front), batch_(std::move(batch)) {
    program_.clear_observations();
  }
  std::optional<std::string> resolve(const std::string& fqn) const override { return front_.resolve(fqn); }
  void observe_input(const std::string& site, int64_t id) override { program_.observe(site, exported::Side::Input, id); }
  at::Tensor weight_of(const std::string& fqn, std::string* why) override {
    const std::string name = model_.weight_name(fqn);
    if (name.empty()) return {};
    // A node whose bias (stride, ...) is computed at run time cannot be applied alone: the layer's figure is
    // null, saying why, as on the TorchScript path.
    if (const std::string op = program_.weight_op_not_fixed(name); !op.empty()) {
      *why = cannot_apply_alone(op);
      return {};
    }
    return program_.state(name);
  }
  at::Tensor apply(const std::string& fqn, const at::Tensor& x, const at::Tensor& weight) override {
    return program_.apply_weight_op(model_.weight_name(fqn), x, weight);
  }
  void run(size_t k, const instrumentation::ObserveSink& sink) override { program_.run(batch_(k), sink); }

 private:
  exported::Program& program_;
  const exported::ExportedModel& model_;
  const ExportedFront& front_;
  std::function<std::vector<at::Tensor>(size_t)> batch_;
};

}  // namespace

report::Report analyze_exported(const AnalyzeOptions& o, std::string* stats_bytes) {
  auto dets = make_detectors(o);
  check_error_passes(o, dets);
  if (o.device != "cpu")
    throw UsageError("--device " + o.device + ": torch.export programs run on the CPU only so far");
  set_threads(o.threads);
  StageClock clock;

  report::Report rep;
  rep.model_path = o.model_path;
  rep.calib_path = o.calib_path;
  rep.device = o.device;
  std::future<std::string> sha = std::async(std::launch::async, [path = o.model_path] { return sha256_file(path); });
  exported::Program program = exported::Program::load(o.model_path);
  const exported::ExportedModel view(program);
  const ExportedFront front(program, view);
  rep.model_sha256 = sha.get();
  rep.model_modules = view.tree().size();
  if (has_detector(dets, "quantization_error_detector"))
    for (const auto& node : view.tree().nodes()) {
      // The error pass and the whole-model passes apply a layer through its aten.linear/convNd node.
      const std::string weight = node.kind.is_linear_or_conv() ? view.weight_name(node.fqn) : "";
      const std::string reader = weight.empty() ? "" : program.unapplied_weight_reader(weight);
      if (!reader.empty())
        throw InputError("model '" + o.model_path + "': layer '" + node.fqn + "' applies its weight '" + weight +
                         "' through " + reader + ", not aten.linear or aten.convNd (as a program after "
                         "run_decompositions()): the error detector measures a layer at that op; save the "
                         "program torch.export.export returns, or leave error out of --detectors");
    }
  clock.lap("load");

  calibration::Archive archive = calibration::Archive::open(o.calib_path, o.calibration);
  rep.batches = archive.size();
  std::vector<std::vector<c10::IValue>> batch_args;
  for (size_t i = 0; i < archive.size(); ++i) batch_args.push_back(exported_args(program, archive.batch(i), i));
  const std::optional<at::ScalarType> dtype = state_dtype(program, view);
  const bool cast = check_dtypes(program.input_names(), batch_args, dtype, o.cast_inputs, rep.warnings);
  auto tensors = [&](std::vector<c10::IValue> args) {
    std::vector<at::Tensor> out;
    for (auto& a : args) {
      at::Tensor t = a.toTensor();
      out.push_back(cast && t.is_floating_point() && t.scalar_type() != *dtype ? t.to(*dtype) : t);
    }
    return out;
  };

  const detectors::ChannelAxes axes = channel_axes(o, front);
  Plan plan;
  plan_requests(dets, front, axes, plan, rep.warnings);
  for (size_t id = 0; id < plan.keys().size(); ++id)
    program.observe(plan.keys()[id].first, side_of(plan.keys()[id].second), static_cast<int64_t>(id));
  rep.call_order = front.call_sites();
  // The error pass's first batches are kept as they go by (layer_capture.h), as on the TorchScript path.
  CaptureSites sites{[&](const std::string& fqn) { return front.resolve(fqn); },
                     [&](const std::string& site) { return own_calls(program, site); },
                     [&](const std::string& site, int64_t id) {
                       return program.observe(site, exported::Side::Output, id) > 0;
                     }};
  const bool keep = o.error_memory_mib > 0 && has_detector(dets, "quantization_error_detector");
  LayerCapture capture(keep ? capture_points(view, plan.keys(), sites) : std::map<int64_t, LayerCapture::Key>(),
                       std::min(static_cast<size_t>(o.error.error_batches), archive.size()), o.error_memory_mib << 20);
  clock.lap("instrument");

  auto& points = plan.points();
  ObserveSchedule schedule([&points](int64_t id, const at::Tensor& x) { points[id].observe(x); }, points.size(), true);
  const int64_t planned = static_cast<int64_t>(points.size());  // ids above: the capture's alone
  exported::ObserveSink sink = [&schedule, &capture, planned](int64_t id, const at::Tensor& x) {
    if (capture.active()) capture.offer(id, x);
    if (id < planned) schedule.observe(id, x);
  };
  FiniteCheck finite(program.input_names(), archive.size());
  {
    c10::InferenceMode inference;
    for (size_t i = 0; i < archive.size(); ++i) {
      if (interrupt_requested()) throw Interrupted("interrupted during calibration (batch " + std::to_string(i + 1) +
                                                   " of " + std::to_string(archive.size()) + "); no report written");
      auto args = std::move(batch_args[i]);
      finite.check(args, i);
      try {
        program.run(tensors(std::move(args)), sink);
      } catch (const InputError& e) {
        throw InputError("calibration batch " + std::to_string(i) + ": " + e.what());
      } catch (const std::exception& e) {
        throw ModelError("the exported program failed on calibration batch " + std::to_string(i) + ": " +
                         root_cause_line(e.what()));
      }
      schedule.batch_done();
      capture.batch_done();
      archive.release(i);
      if (o.on_batch) o.on_batch(i + 1, archive.size());
    }
  }
  schedule.finish();
  finite.finish();
  clock.lap("calibrate");
  for (auto& p : points) p.finalize(static_cast<int64_t>(archive.size()));

  if (!o.save_stats.empty()) {
    stats::StatsFile f;
    f.tool = std::string("qreport ") + QREPORT_VERSION;
    f.model_path = o.model_path;
    f.model_sha256 = rep.model_sha256;
    f.device = o.device;
    f.settings = stats_settings(o, dets);
    std::vector<size_t> all(archive.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    f.calibration.push_back({o.calib_path, static_cast<int64_t>(archive.size()),
                             stats::run_identifier(rep.model_sha256, o.calib_path, all, run_settings(o, f.settings))});
    for (size_t id = 0; id < plan.keys().size(); ++id)
      f.points.push_back({plan.keys()[id].first, instrumentation::side_name(plan.keys()[id].second),
                          points[id].finished()});
    *stats_bytes = stats::to_bytes(f);
  }

  run_detectors(dets, view, plan, axes, rep);
  clock.lap("detectors");
  LayerErrorInput in;
  in.model = &view;
  in.total_batches = archive.size();
  in.batches = std::min(static_cast<size_t>(o.error.error_batches), archive.size());
  in.host = std::make_shared<ExportedLayerHost>(program, view, front, [&](size_t k) {
    return tensors(exported_args(program, archive.batch(k), k));  // checked in calibration
  });
  in.on_batch = [&](size_t done, size_t) { archive.release(done - 1); };
  in.schemes = o.schemes;
  in.captured = &capture;
  measure_layer_error(in, rep);
  spdlog::debug("error pass: {} bytes of layer values kept from calibration", capture.bytes());
  capture.clear();
  in.host.reset();  // its observations go before the whole-model passes' own
  clock.lap("error_pass");

  WholeModelPasses passes;
  passes.model = &view;
  passes.make_host = [&] { return exported_run_host(program, view, front); };
  passes.stats = &plan;
  passes.simulate_batches = archive.size();
  passes.sensitivity_batches.resize(archive.size());
  std::iota(passes.sensitivity_batches.begin(), passes.sensitivity_batches.end(), size_t{0});
  // The program's inputs as the hosts take them, checked in calibration.
  passes.args_of = [&](size_t i) {
    std::vector<c10::IValue> args;
    for (auto& t : tensors(exported_args(program, archive.batch(i), i))) args.emplace_back(std::move(t));
    return args;
  };
  passes.release = [&](size_t i) { archive.release(i); };
  run_whole_model_passes(passes, o, rep, clock);
  return rep;
}

// --- ExportedFront ---

bool ExportedFront::has_call(const std::string& fqn) const {
  return std::any_of(program_.calls().begin(), program_.calls().end(),
                     [&](const exported::ModuleCall& c) { return c.fqn == fqn; });
}

std::optional<std::string> ExportedFront::resolve(const std::string& fqn) const {
  // The outermost enclosing module that TorchScript keeps as one leaf call (fused, QAT), if called.
  std::vector<std::string> chain;
  for (std::string at = fqn; !at.empty(); at = model::parent_fqn(at)) chain.push_back(at);
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const model::ModuleNode* node = model_.tree().find(*it);
    if (node && (node->kind.is_fused || node->kind.is_qat) && has_call(*it)) return *it;
  }
  bool found = false;
  std::string site = program_.resolve(fqn, &found);
  if (!found) return std::nullopt;
  return site;
}

std::vector<std::string> ExportedFront::call_sites() const {
  std::vector<std::string> out;
  // Leaf calls (functional ones included) and fused/QAT calls, each where it observes itself.
  for (const auto& c : program_.calls()) {
    const model::ModuleNode* node = model_.tree().find(c.fqn);
    const bool kept_whole = node && (node->kind.is_fused || node->kind.is_qat);
    auto site = resolve(c.fqn);
    if (site && *site == c.fqn && (c.leaf || kept_whole)) out.push_back(c.fqn);
  }
  return out;
}

instrumentation::LayoutGuess ExportedFront::input_layout(const std::string& fqn) const {
  auto site = resolve(fqn);
  if (!site) return {};
  const int layout = program_.input_layout(*site);
  if (layout == 1) return {instrumentation::Layout::Features, "produced or consumed by a features-last op"};
  if (layout == 2) return {instrumentation::Layout::Channels, "produced or consumed by a channels op"};
  return {};
}

}  // namespace qreport::pipeline
