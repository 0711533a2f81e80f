#include "pipeline/analyze.h"
#include "pipeline/job_run.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <set>
#include <thread>

#include "common/errors.h"
#include "common/text.h"
#include "instrumentation/instrumentation.h"
#include "model/model.h"
#include "observers/observers.h"
#include "pipeline/batch_checks.h"
#include "pipeline/exported_front.h"
#include "pipeline/front.h"
#include "pipeline/layer_capture.h"
#include "pipeline/stage_clock.h"
#include "pipeline/whole_model_passes.h"
#include "pipeline/layer_error.h"
#include "pipeline/observe_worker.h"
#include "pipeline/plan.h"
#include "pipeline/run_host.h"
#include "stats/stats.h"

namespace qreport::pipeline {
namespace {

using detectors::Side;

c10::Device parse_device(const std::string& name) {
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    c10::Device dev(c10::kCPU);
    try {
      dev = c10::Device(name);
    } catch (const std::exception&) {
      throw UsageError("--device must be cpu, cuda or cuda:N (got '" + name + "')");
    }
#if !defined(QREPORT_TORCH_HAS_CUDA)
    throw UsageError("--device " + name + ": this qreport was built with a LibTorch without CUDA (" +
                     "rebuild it against a CUDA LibTorch, see README)");
#else
    // torch::cuda's functions exist, unchanged, from LibTorch 1.x to 2.x.
    if (!torch::cuda::is_available())
      throw UsageError("--device " + name + ": no CUDA GPU is available on this machine");
    const int count = static_cast<int>(torch::cuda::device_count());
    if (dev.has_index() && dev.index() >= count)
      throw UsageError("--device " + name + ": this machine has " + std::to_string(count) + " CUDA GPU" +
                       (count == 1 ? "" : "s") + " (cuda:0" + (count > 1 ? "..cuda:" + std::to_string(count - 1) : "") + ")");
    if (!dev.has_index()) dev = c10::Device(c10::kCUDA, 0);
#endif
    return dev;
  }
  throw UsageError("--device must be cpu, cuda or cuda:N (got '" + name + "')");
}

}  // namespace

std::vector<std::unique_ptr<detectors::Detector>> make_detectors(const AnalyzeOptions& o) {
  std::vector<std::string> wanted = o.detectors.empty() ? detectors::all_detector_names() : o.detectors;
  std::set<std::string> set(wanted.begin(), wanted.end());
  std::vector<std::unique_ptr<detectors::Detector>> out;
  for (const auto& name : detectors::all_detector_names()) {
    if (!set.count(name)) continue;
    if (name == "per_channel_detector") out.push_back(detectors::make_per_channel(o.per_channel));
    if (name == "dynamic_vs_static_detector") out.push_back(detectors::make_dynamic_static(o.dynamic_static));
    if (name == "input_weight_equalization_detector") out.push_back(detectors::make_equalization(o.equalization));
    if (name == "outlier_detector") out.push_back(detectors::make_outlier(o.outlier));
    if (name == "quantization_error_detector") out.push_back(detectors::make_quantization_error(o.error));
  }
  return out;
}

bool has_detector(const std::vector<std::unique_ptr<detectors::Detector>>& dets, const std::string& name) {
  return std::any_of(dets.begin(), dets.end(), [&](const auto& d) { return d->name() == name; });
}

detectors::ChannelAxes channel_axes(const AnalyzeOptions& o, const model::Model& model,
                                    const instrumentation::Instrumenter& instr) {
  return channel_axes(o, ScriptFront(model, instr));
}

detectors::ChannelAxes channel_axes(const AnalyzeOptions& o, const Front& front) {
  if (o.ch_axis) return detectors::ChannelAxes::fixed_axis(*o.ch_axis);
  return detectors::ChannelAxes::automatic(front.model(),
                                           [&front](const std::string& fqn) { return front.input_layout(fqn); });
}

// The thread count, set once for LibTorch's pools: --threads, else OMP_NUM_THREADS (torchrun sets it to 1
// per rank when it starts several on a node), else one per core. ATen's intra-op pool is OpenMP's in
// Debian's and PyTorch's builds; the inter-op pool (forked calls, which qreport runs in place anyway) can
// be sized only before its first use, so a second analyze in one process keeps the first size.
void set_threads(int requested) {
  int threads = requested;
  if (threads <= 0)
    if (const char* env = std::getenv("OMP_NUM_THREADS")) threads = std::atoi(env);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  static bool interop_set = false;
  if (!interop_set) {
    interop_set = true;
    try {
      at::set_num_interop_threads(threads);
    } catch (const std::exception&) {  // already started: keep its size
    }
  }
  spdlog::debug("threads: {} (intra-op and inter-op)", threads);
}

void check_error_passes(const AnalyzeOptions& o, const std::vector<std::unique_ptr<detectors::Detector>>& dets) {
  if (has_detector(dets, "quantization_error_detector")) return;
  if (o.simulate)
    throw UsageError("--simulate needs the error detector (its input statistics set the simulated quantizers): "
                     "add error to --detectors");
  if (!o.schemes.empty())
    throw UsageError("--schemes needs the error detector (it measures each layer's error under them): "
                     "add error to --detectors");
  if (o.sensitivity)
    throw UsageError("--sensitivity and --target-sqnr need the error detector (int8-static's qparams and mapping come "
                     "from it): add error to --detectors");
}

stats::Settings stats_settings(const AnalyzeOptions& o, const std::vector<std::unique_ptr<detectors::Detector>>& dets) {
  stats::Settings s;
  s.ch_axis = o.ch_axis ? std::to_string(*o.ch_axis) : "auto";
  for (const auto& d : dets) s.detectors.push_back(d->name());
  s.outlier_reference_percentile = o.outlier.reference_percentile;
  return s;
}

namespace {

std::string replace_rank(std::string path, int rank) {
  for (size_t at; (at = path.find("{rank}")) != std::string::npos;) path.replace(at, 6, std::to_string(rank));
  return path;
}

}  // namespace

report::Report analyze_rank(const AnalyzeOptions& o_in, distributed::Job* job, std::string* stats_bytes) {
  AnalyzeOptions o = o_in;
  const bool per_rank_files = job && o.calib_path.find("{rank}") != std::string::npos;
  if (per_rank_files) o.calib_path = replace_rank(o.calib_path, job->rank());
  if (job && o.device == "cuda") o.device = "cuda:" + std::to_string(o.job->local_rank);
  if (exported::is_pt2_archive(o.model_path)) {
    if (job) throw UsageError("model '" + o.model_path + "' is a torch.export program: a distributed analyze runs "
                              "TorchScript models only so far (run it in one process)");
    return analyze_exported(o, stats_bytes);
  }
  auto dets = make_detectors(o);
  check_error_passes(o, dets);
  c10::Device device = parse_device(o.device);
  // IEEE float32 convolutions on a GPU: PyTorch lets cuDNN use TF32 (10-bit mantissa) by default, which
  // moves activations by ~1e-3 relative, and the statistics would no longer be the float32 model's (nor
  // the CPU's). Matmuls are float32 by default already ("highest" precision).
  if (device.is_cuda()) at::globalContext().setAllowTF32CuDNN(false);
  set_threads(o.threads);
  StageClock clock;

  report::Report rep;
  rep.model_path = o.model_path;
  rep.calib_path = o.calib_path;
  rep.device = o.device;

  // The model's hash (hundreds of MB for a ViT) is read on a second thread while torch::jit::load, which
  // runs on one, parses the same file; the other core would be idle. An unreadable file fails in load.
  std::future<std::string> sha = std::async(std::launch::async, [path = o.model_path] { return sha256_file(path); });
  model::Model model = model::Model::load(o.model_path);
  rep.model_sha256 = sha.get();
  rep.model_modules = model.tree().size();
  if (job) {  // the same model and observations on every rank, or none starts
    job->check_same("model", "sha256 " + rep.model_sha256.substr(0, 16));
    job->check_same("settings", stats::describe(stats_settings(o, dets)));
  }
  calibration::Archive archive = calibration::Archive::open(o.calib_path, o.calibration);
  rep.batches = archive.size();
  if (job) job->check_same("calibration", calibration_fingerprint(o_in, o.calib_path, archive.size(), per_rank_files));
  // This rank's batches: all of its own file, or every world-th of the shared one.
  std::vector<size_t> mine;
  for (size_t i = 0; i < archive.size(); ++i)
    if (!job || per_rank_files || static_cast<int>(i % job->world()) == job->rank()) mine.push_back(i);
  clock.lap("load");
  // Check every batch against forward's schema before running anything; the normalized arguments are
  // handles to the archive's tensors (no copies) and are consumed by the calibration loop.
  std::vector<std::vector<c10::IValue>> batch_args;
  batch_args.reserve(archive.size());
  for (size_t i = 0; i < archive.size(); ++i)
    batch_args.push_back(job && !std::binary_search(mine.begin(), mine.end(), i) ? std::vector<c10::IValue>()
                                                                                 : normalized_args(model, archive.batch(i), i));

  const std::optional<at::ScalarType> dtype = parameter_dtype(model);
  if (dtype == at::kHalf && device.is_cpu())
    throw InputError("model '" + o.model_path + "' has float16 parameters, and LibTorch has no CPU kernels for "
                     "half-precision convolutions and matrix products: analyze the float32 model "
                     "(model.float() before torch.jit.save) or run on a GPU (--device cuda)");
  const bool cast = check_dtypes(model, batch_args, dtype, o.cast_inputs, rep.warnings);

  instrumentation::Instrumenter instr(model);
  const detectors::ChannelAxes axes = channel_axes(o, model, instr);
  for (const auto& f : instr.fast_paths()) spdlog::debug("fused fast path bypassed: {}", f);
  Plan plan;
  plan_requests(dets, ScriptFront(model, instr), axes, plan, rep.warnings);
  for (size_t id = 0; id < plan.keys().size(); ++id)
    instr.observe(plan.keys()[id].first, plan.keys()[id].second, static_cast<int64_t>(id));
  for (const auto& w : instr.warnings()) rep.warnings.push_back(w);
  rep.call_order = instr.call_sites();
  clock.lap("instrument");

  if (device.type() != c10::kCPU) model.module().to(device);
  // The batch's tensors on the run's device, cast to the model's dtype where asked. To a GPU through
  // pinned memory and an asynchronous copy: the host side (the copy out of the mapped archive into a
  // pinned block of LibTorch's caching host allocator) then overlaps the GPU's work on the previous batch,
  // whose kernels are still running, and the transfer itself needs no host synchronisation.
  const bool stage_pinned = device.is_cuda();
  auto to_device = [&](std::vector<c10::IValue>& args) {
    for (auto& a : args) {
      if (!a.isTensor()) continue;
      const at::Tensor& t = a.toTensor();
      const bool recast = cast && t.is_floating_point() && t.scalar_type() != *dtype;
      if (t.device() == device && !recast) continue;
      const at::ScalarType to = recast ? *dtype : t.scalar_type();
      a = stage_pinned && t.is_cpu() ? t.pin_memory().to(device, to, /*non_blocking=*/true) : t.to(device, to);
    }
  };
  auto& points = plan.points();
  // Small activations are observed on a thread of their own while the model runs on (observe_worker.h).
  // followers[id]: the points that take their range from point id's read of the same tensor (below).
  std::vector<std::vector<int64_t>> followers(points.size());
  ObserveSchedule schedule(
      [&points, &followers](int64_t id, const at::Tensor& x) {
        const auto range = points[id].observe_and_range(x);
        for (int64_t f : followers[id]) range ? points[f].observe_with_range(x, *range) : points[f].observe(x);
      },
      points.size(), device.is_cpu());
  // The error pass's first batches are kept as they go by (layer_capture.h), on the rank that measures.
  const size_t error_batches = std::min(static_cast<size_t>(o.error.error_batches), mine.size());
  CaptureSites sites{[&](const std::string& fqn) { return instr.resolve(fqn); },
                     [&](const std::string& site) { return instr.functional_op(site).empty(); },
                     [&](const std::string& site, int64_t id) { return instr.observe(site, Side::Output, id) > 0; }};
  const bool keep = o.error_memory_mib > 0 && !(job && job->rank() != 0) && has_detector(dets, "quantization_error_detector");
  LayerCapture capture(keep ? capture_points(model, plan.keys(), sites) : std::map<int64_t, LayerCapture::Key>(),
                       error_batches, o.error_memory_mib << 20);
  const int64_t planned = static_cast<int64_t>(points.size());  // ids above: the capture's alone
  // The graph is final here: the values no later op writes go to the observe worker without a copy.
  // Asked only where the schedule starts a worker (after the first batch).
  size_t borrowable = 0;
  schedule.set_borrowable([&] {
    std::set<int64_t> ids = instr.stable_observed_ids();
    borrowable = ids.size();
    return ids;
  });
  // A point that wants only a tensor's range, observed back to back with one whose channel statistics
  // read that tensor whole (a Conv's output, then the ReLU6's input: shared_values.cpp), takes the range
  // from that read: one read and, on the observe worker, one copy fewer.
  std::vector<char> follows(points.size(), 0);
  size_t shared = 0;
  if (device.is_cpu())
    for (auto [a, b] : instr.observations_of_one_value()) {
      if (a >= planned || b >= planned) continue;
      if (!points[a].wants_only_range()) std::swap(a, b);  // a: the one that would follow
      if (follows[a] || follows[b] || !followers[a].empty() || !points[a].wants_only_range() || !points[b].reads_range())
        continue;
      followers[b].push_back(a);
      follows[a] = 1;
      ++shared;
    }
  if (shared > 0) spdlog::debug("{} point(s) take their range from another point's read of the same tensor", shared);
  instrumentation::ObserveSink sink = [&schedule, &capture, &follows, planned](int64_t id, const at::Tensor& x) {
    if (capture.active()) capture.offer(id, x);
    if (id < planned && !follows[id]) schedule.observe(id, x);
  };
  // The model's buffers as calibration finds them (error pass: LayerErrorInput::rewind), copied wherever
  // the error detector runs (whether its pass runs the model again is known only after calibration);
  // buffers are a model's running statistics and masks, small beside its weights.
  std::vector<std::pair<at::Tensor, at::Tensor>> buffers_at_start, buffers_at_end;
  if (has_detector(dets, "quantization_error_detector"))
    for (const auto& b : model.module().named_buffers(/*recurse=*/true))
      if (b.value.defined()) buffers_at_start.emplace_back(b.value, b.value.clone());
  FiniteCheck finite(model, archive.size());
  {
    c10::InferenceMode inference;
    for (size_t k = 0; k < mine.size(); ++k) {
      const size_t i = mine[k];
      if (interrupt_requested()) throw Interrupted("interrupted during calibration (batch " + std::to_string(k + 1) +
                                                   " of " + std::to_string(mine.size()) + "); no report written");
      auto args = std::move(batch_args[i]);
      to_device(args);
      finite.check(args, i);
      try {
        instr.run(std::move(args), sink);
      } catch (const std::exception& e) {
        throw ModelError("the model's forward failed on calibration batch " + std::to_string(i) + ": " +
                         root_cause_line(e.what()));
      }
      schedule.batch_done();
      capture.batch_done();
      archive.release(i);
      if (job) job->beat(static_cast<int64_t>(k + 1));
      if (o.on_batch) o.on_batch(k + 1, mine.size());
    }
  }
  schedule.finish();
  if (schedule.split())
    spdlog::debug("small activations: the model ran on {} thread(s) after the first batch, their observers on one "
                  "({} of {} points read without a copy: no later op writes their values)",
                  at::get_num_threads() - 1, borrowable, points.size());
  finite.finish();
  clock.lap("calibrate");
  for (auto& p : points) p.finalize(static_cast<int64_t>(mine.size()));
  // The second pass that measures each layer's output SQNR: the first --error-batches of this rank's.
  auto layer_error = [&](size_t total) {
    LayerErrorInput in;
    in.model = &model;
    in.total_batches = total;
    in.batches = std::min(static_cast<size_t>(o.error.error_batches), mine.size());
    in.host = script_layer_host(
        model,
        [&](size_t k) {
          std::vector<c10::IValue> args = normalized_args(model, archive.batch(mine[k]), mine[k]);  // checked before
          to_device(args);
          return args;
        },
        &instr);
    in.on_batch = [&](size_t done, size_t) { archive.release(mine[done - 1]); };
    in.schemes = o.schemes;
    in.captured = &capture;
    // LayerErrorInput::rewind and restore: the buffers as calibration found them, and as it left them.
    buffers_at_end.clear();
    for (const auto& [live, value] : buffers_at_start) buffers_at_end.emplace_back(live, live.clone());
    auto put = [](const std::vector<std::pair<at::Tensor, at::Tensor>>& saved) {
      at::NoGradGuard no_grad;
      for (const auto& [live, value] : saved) live.copy_(value);
    };
    in.rewind = [&, put] { put(buffers_at_start); };
    in.restore = [&, put] { put(buffers_at_end); };
    return in;
  };
  if (!o.save_stats.empty() || job) {
    stats::StatsFile f;
    f.tool = std::string("qreport ") + QREPORT_VERSION;
    f.model_path = o.model_path;
    f.model_sha256 = rep.model_sha256;
    f.device = o.device;
    f.settings = stats_settings(o, dets);
    f.calibration.push_back({o.calib_path, static_cast<int64_t>(mine.size()),
                             stats::run_identifier(rep.model_sha256, o.calib_path, mine, run_settings(o, f.settings))});
    for (size_t id = 0; id < plan.keys().size(); ++id)
      f.points.push_back({plan.keys()[id].first, instrumentation::side_name(plan.keys()[id].second),
                          points[id].finished()});
    if (job) {
      report::Report out = reduce_and_report(o, o_in, *job, f, model, rep, stats_bytes);
      // The layers' output SQNR on rank 0's own batches (the other ranks have finished).
      if (out.emit) {
        const LayerErrorInput in = layer_error(out.batches);
        measure_layer_error(in, out);
        // Said in the report: a single run measures the archive's first batches, a job rank 0's shard.
        std::string used;
        for (size_t k = 0; k < in.batches; ++k) used += (k ? ", " : "") + std::to_string(mine[k]);
        if (in.batches > 0)
          out.warnings.push_back("quantization_error_detector: in a job of " + std::to_string(job->world()) +
                                 " ranks, sqnr_db is measured on rank 0's own batches (" + used +
                                 " of its archive), not on the job's first " + std::to_string(in.batches));
      }
      clock.lap("reduce and report");
      return out;
    }
    *stats_bytes = stats::to_bytes(f);
  }

  run_detectors(dets, model, plan, axes, rep);
  clock.lap("detectors");
  measure_layer_error(layer_error(mine.size()), rep);
  spdlog::debug("error pass: {} bytes of layer values kept from calibration", capture.bytes());
  capture.clear();
  clock.lap("error_pass");
  WholeModelPasses passes;
  passes.model = &model;
  passes.make_host = [&] { return script_run_host(model); };
  passes.stats = &plan;
  passes.simulate_batches = archive.size();
  passes.sensitivity_batches = mine;
  passes.args_of = [&](size_t i) {
    std::vector<c10::IValue> args = normalized_args(model, archive.batch(i), i);  // checked in the first pass
    to_device(args);
    return args;
  };
  passes.release = [&](size_t i) { archive.release(i); };
  run_whole_model_passes(passes, o, rep, clock);
  return rep;
}

}  // namespace qreport::pipeline
