// qreport's quantization-error detector (docs/quantization-error.md): for every Linear and Conv module,
// the signal-to-quantization-noise ratio of its weight (qint8 symmetric, per-tensor and per-channel, as
// default_weight_observer and default_per_channel_weight_observer quantize it) and of its input on the
// calibration data (quint8 affine with the backend's reduce_range, for MinMaxObserver's range and for
// the range HistogramObserver would choose). PyTorch's ModelReport has no such detector.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "common/errors.h"
#include "common/text.h"
#include "detectors/detectors.h"
#include "detectors/scheme_report.h"
#include "model/model.h"

namespace qreport::detectors {

std::optional<double> sqnr_db(double signal, double noise, std::string* why) {
  // Checked first: a NaN compares false with everything, and read as "zero signal" or "exact" below.
  if (!std::isfinite(signal) || !std::isfinite(noise)) {
    *why = std::string(!std::isfinite(signal) ? "the signal" : "the quantization error") +
           " is not finite (NaN or infinite values, or a sum of squares past the float range)";
    return std::nullopt;
  }
  if (!(signal > 0.0)) {
    *why = "the signal is zero";
    return std::nullopt;
  }
  if (!(noise > 0.0)) {
    *why = "quantization leaves it exact (zero error)";
    return std::nullopt;
  }
  const double db = 10.0 * std::log10(signal / noise);
  if (!std::isfinite(db)) {
    *why = "the ratio is not finite";
    return std::nullopt;
  }
  return db;
}

namespace {

using observers::QParams;

constexpr int64_t kHistogramDstBins = 256;              // 2^bits of quint8, HistogramObserver.dst_nbins

Value db_or_null(std::optional<double> v) { return v ? Value::number(*v) : Value::null(); }

// Sum of squares of w and of w - fq(w) (the difference float32, as the tensors are), by BLAS dot products:
// a resnet's weights are 11M values, and float64 copies or a scalar loop cost a tenth of a second. The
// float32 accumulation is within 1e-5 relative of float64 here, 0.0001 dB (the tests allow 0.01 dB).
std::pair<double, double> signal_and_noise(const at::Tensor& w, const at::Tensor& fq) {
  const at::Tensor x = w.reshape(-1), d = (w - fq).reshape(-1);
  return {at::dot(x, x).item<double>(), at::dot(d, d).item<double>()};
}

struct WeightSqnr {
  std::optional<double> per_tensor, per_channel;
  std::string why_tensor, why_channel;
};

WeightSqnr weight_sqnr(const at::Tensor& w) {
  WeightSqnr r;
  if (!w.defined() || w.numel() == 0 || w.dim() < 1) {
    r.why_tensor = r.why_channel = "the module has no weight";
    return r;
  }
  if (const auto fused = observers::weight_quantization_noise(w)) {
    r.per_tensor = sqnr_db(fused->signal, fused->noise_per_tensor, &r.why_tensor);
    r.per_channel = sqnr_db(fused->signal, fused->noise_per_channel, &r.why_channel);
    return r;
  }
  auto [s, n] = signal_and_noise(w, observers::fake_quantize_weight(w, false));
  r.per_tensor = sqnr_db(s, n, &r.why_tensor);
  auto [sc, nc] = signal_and_noise(w, observers::fake_quantize_weight(w, true));
  r.per_channel = sqnr_db(sc, nc, &r.why_channel);
  return r;
}

struct InputSqnr {
  std::optional<double> minmax, histogram;
  std::optional<QParams> minmax_q, histogram_q;
  std::optional<std::pair<float, float>> histogram_range;
  std::string why;  // why both are null
};

InputSqnr input_sqnr(const observers::ObservationPoint* point, int64_t quant_min, int64_t quant_max) {
  InputSqnr r;
  const observers::HistogramSummary* h = point ? point->histogram() : nullptr;
  // Invalid values first: a NaN in the first batch leaves the histogram with no batch counted, and that
  // is not "never observed".
  if (point && point->non_finite().any()) {
    r.why = "its input contains " + point->non_finite().describe() + ", made inside the model";
    return r;
  }
  if (h && !h->invalid.empty()) {
    r.why = h->invalid;
    return r;
  }
  if (!h || h->batches == 0) {
    r.why = "its input was never observed";
    return r;
  }
  if (h->data_min == h->data_max) {
    r.why = "its input is constant";
    return r;
  }
  const QParams mm = observers::affine_qparams(h->data_min, h->data_max, quant_min, quant_max);
  std::string why_mm, why_h;
  r.minmax_q = mm;
  r.minmax = sqnr_db(h->sum_squares, observers::histogram_quantization_error(*h, mm), &why_mm);
  r.histogram_range = observers::histogram_search_range(*h, kHistogramDstBins);
  if (r.histogram_range) {
    const QParams hq = observers::affine_qparams(r.histogram_range->first, r.histogram_range->second, quant_min,
                                                 quant_max);
    r.histogram_q = hq;
    r.histogram = sqnr_db(h->sum_squares, observers::histogram_quantization_error(*h, hq), &why_h);
  }
  r.why = !why_mm.empty() ? why_mm : why_h;
  return r;
}

std::optional<double> gain(std::optional<double> to, std::optional<double> from) {
  if (to && from) return *to - *from;
  return std::nullopt;
}

void warn(DetectorResult& r, const std::string& fqn, const std::string& what, const std::string& why) {
  r.warnings.push_back("quantization_error_detector: " + what + " of '" + fqn + "' is null: " + why);
}

Value empty_list() {
  Value v;
  v.type = Value::Type::List;
  return v;
}

class QuantizationErrorDetector : public Detector {
 public:
  explicit QuantizationErrorDetector(QuantizationErrorOptions o) : o_(std::move(o)) {}
  std::string name() const override { return "quantization_error_detector"; }

  std::vector<ObservationRequest> requests(const model::ModelView& model, const ChannelAxes&) const override {
    std::vector<ObservationRequest> out;
    for (const auto& node : model.tree().nodes()) {
      if (!node.kind.is_linear_or_conv()) continue;
      ObservationRequest q;
      q.fqn = node.fqn;
      q.side = Side::Input;
      q.histogram = true;
      out.push_back(q);
    }
    return out;
  }

  // The statistics-only part: weight and input SQNRs (diagnostics) and this detector's preferences for
  // the mapping. The fields that depend on the decided mapping and on the measured layer outputs
  // (recommended observers, sqnr_db, sqnr_limited_by, worst_layers, the text) are filled by
  // finish_quantization_error once both are known.
  DetectorResult report(const model::ModelView& model, const StatsLookup& stats, const ChannelAxes&) const override {
    const bool reduce_range = o_.backend == "x86" || o_.backend == "fbgemm";
    const int64_t qmin = 0, qmax = reduce_range ? 127 : 255;
    DetectorResult r;
    r.name = name();
    r.options = {{"backend", Value::string(o_.backend)},
                 {"activation_quant_max", Value::integer(qmax)},
                 {"histogram_min_gain_db", Value::number(o_.histogram_min_gain_db)},
                 {"min_sqnr_db", o_.min_sqnr_db ? Value::number(*o_.min_sqnr_db) : Value::null()},
                 {"worst_layers", Value::integer(o_.worst_layers)},
                 {"error_batches", Value::integer(o_.error_batches)}};
    // Every layer's input SQNRs first, the layers spread over the threads: each is HistogramObserver's
    // search over its own histogram (2048 bins), independent of the others, single-threaded and the same
    // number on any thread, and together they were a serial stretch of the run's end (about 0.03 s of
    // mobilenet_v2's 53). The lookups stay on this thread (a StatsLookup need not be thread-safe).
    std::vector<const observers::ObservationPoint*> points;
    for (const auto& node : model.tree().nodes())
      if (node.kind.is_linear_or_conv()) points.push_back(stats.find(node.fqn, Side::Input));
    std::vector<InputSqnr> inputs(points.size());
    at::parallel_for(0, static_cast<int64_t>(points.size()), 1, [&](int64_t b, int64_t e) {
      for (auto i = static_cast<size_t>(b); i < static_cast<size_t>(e); ++i) inputs[i] = input_sqnr(points[i], qmin, qmax);
    });
    size_t layer = 0;
    for (const auto& node : model.tree().nodes()) {
      if (!node.kind.is_linear_or_conv()) continue;
      const WeightSqnr w = weight_sqnr(model.weight(node.fqn));
      const auto* point = points[layer];
      const InputSqnr& in = inputs[layer++];
      const observers::NonFiniteCount none;
      const observers::NonFiniteCount& bad = point ? point->non_finite() : none;
      if (!w.per_tensor) warn(r, node.fqn, "weight SQNR per tensor", w.why_tensor);
      if (!w.per_channel) warn(r, node.fqn, "weight SQNR per channel", w.why_channel);
      if (!in.minmax && !in.histogram) {
        warn(r, node.fqn, "input SQNR", in.why);
        r.null_reasons[node.fqn] = in.why;
      }

      const std::optional<double> channel_gain = gain(w.per_channel, w.per_tensor);
      const std::optional<double> histogram_gain = gain(in.histogram, in.minmax);
      const bool use_histogram = histogram_gain && *histogram_gain >= o_.histogram_min_gain_db;
      const bool use_per_channel = channel_gain && *channel_gain > 0.0;

      auto scale = [](const std::optional<QParams>& q) { return q ? Value::number(q->scale) : Value::null(); };
      auto zero_point = [](const std::optional<QParams>& q) { return q ? Value::integer(q->zero_point) : Value::null(); };
      Value hmin = in.histogram_range ? Value::number(in.histogram_range->first) : Value::null();
      Value hmax = in.histogram_range ? Value::number(in.histogram_range->second) : Value::null();
      r.modules.push_back(
          {node.fqn,
           {{"weight_sqnr_per_tensor_db", db_or_null(w.per_tensor)},
            {"weight_sqnr_per_channel_db", db_or_null(w.per_channel)},
            {"weight_per_channel_gain_db", db_or_null(channel_gain)},
            {"input_sqnr_minmax_db", db_or_null(in.minmax)},
            {"input_sqnr_histogram_db", db_or_null(in.histogram)},
            {"input_histogram_gain_db", db_or_null(histogram_gain)},
            {"input_histogram_min", hmin},
            {"input_histogram_max", hmax},
            {"input_minmax_scale", scale(in.minmax_q)},
            {"input_minmax_zero_point", zero_point(in.minmax_q)},
            {"input_histogram_scale", scale(in.histogram_q)},
            {"input_histogram_zero_point", zero_point(in.histogram_q)},
            {"input_nan_count", Value::integer(bad.nan)},
            {"input_inf_count", Value::integer(bad.pos_inf + bad.neg_inf)},
            {"input_non_finite_first_batch", bad.first_batch >= 0 ? Value::integer(bad.first_batch) : Value::null()},
            {"recommended_activation_observer",
             Value::string(use_histogram ? "default_histogram_observer" : "default_observer")},
            {"recommended_weight_observer",
             Value::string(use_per_channel ? "default_per_channel_weight_observer" : "default_weight_observer")},
            {"sqnr_db", Value::null()},
            {"sqnr_limited_by", Value::null()}}});
      QConfigInfo info;
      info.fqn = node.fqn;
      info.is_weight_per_channel = use_per_channel;
      info.weight_per_channel_gain_db = channel_gain;
      info.is_activation_histogram = use_histogram;
      r.qconfig_info.push_back(info);
    }
    r.summary = {{"worst_layers", empty_list()},
                 {"error_batches_used", Value::integer(0)}};
    return r;
  }

 private:
  QuantizationErrorOptions o_;
};

const Value* field(const Fields& f, const std::string& key) { return find_field(f, key); }
std::optional<double> number_of(const Value* v) {
  return v && v->type == Value::Type::Float ? std::optional<double>(v->f) : std::nullopt;
}
void set_field(Fields& f, const std::string& key, Value v) {
  for (auto& [k, old] : f)
    if (k == key) {
      old = std::move(v);
      return;
    }
  f.emplace_back(key, std::move(v));
}
std::string signed_db(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.2f", v);
  return buf;
}

struct Ranked {
  std::string fqn;
  double db;
  std::string limited_by;
  size_t module;  // index in result.modules
};

std::string error_text(const DetectorResult& r, const std::vector<Ranked>& ranked,
                       const LayerErrorMeasurement& measured) {
  const Value* qmax = field(r.options, "activation_quant_max");
  const Value* backend = field(r.options, "backend");
  const auto bound = number_of(field(r.options, "min_sqnr_db"));
  std::string out = "Quantization error (SQNR in dB, higher is better; int8 weights, quint8 inputs in [0, " +
                    std::to_string(qmax ? qmax->i : 255) + "] as get_default_qconfig(\"" +
                    (backend ? backend->s : std::string()) + "\") sets them):\n";
  if (measured.batches == 0)
    return out + "The layers' output SQNR was not measured: " + measured.unavailable +
           ". The weight and input SQNRs above are per-layer diagnostics only.\n";
  out += "Each layer's output SQNR: the layer on its quantized input and weight under the recommended "
         "configuration, against the float layer, on " +
         std::to_string(measured.batches) + " of " + std::to_string(measured.total_batches) +
         " calibration batch" + (measured.total_batches == 1 ? "" : "es") + ".\n";
  if (ranked.empty()) return out + "No Linear or Conv layer could be measured.\n";
  out += "The " + std::to_string(ranked.size()) + " layer" + (ranked.size() == 1 ? "" : "s") +
         " with the lowest output SQNR:\n";
  size_t width = 0;
  for (const auto& k : ranked) width = std::max(width, k.fqn.size());
  for (size_t i = 0; i < ranked.size(); ++i) {
    const auto& k = ranked[i];
    const Fields& f = r.modules[k.module].fields;
    std::string line = "  " + std::to_string(i + 1) + ". " + k.fqn + std::string(width - k.fqn.size(), ' ') + "  " +
                       format_db(k.db) + " dB" + (k.limited_by.empty() ? "" : ", limited by its " + k.limited_by);
    std::string notes;
    const auto cg = number_of(field(f, "weight_per_channel_gain_db"));
    const auto hg = number_of(field(f, "input_histogram_gain_db"));
    const Value* wo = field(f, "recommended_weight_observer");
    const Value* ao = field(f, "recommended_activation_observer");
    const bool per_channel = wo && wo->s == "default_per_channel_weight_observer";
    if (cg) notes += std::string(per_channel ? "per-channel weights " : "per-tensor weights: per-channel ") + signed_db(*cg) + " dB";
    if (hg && ao && ao->s == "default_histogram_observer")
      notes += std::string(notes.empty() ? "" : ", ") + "histogram range " + signed_db(*hg) + " dB";
    if (ao && ao->s == "default_dynamic_quant_observer") notes += std::string(notes.empty() ? "" : ", ") + "dynamic";
    out += line + (notes.empty() ? "" : " (" + notes + ")") + "\n";
  }
  if (bound) {
    size_t below = 0;
    for (const auto& m : r.modules) {
      const auto v = number_of(field(m.fields, "sqnr_db"));
      if (v && *v < *bound) ++below;
    }
    out += std::to_string(below) + " layer" + (below == 1 ? "" : "s") + " below --min-sqnr " + format_db(*bound) +
           " dB.\n";
  }
  return out;
}

}  // namespace

std::vector<std::string> finish_quantization_error(DetectorResult& r, const model::ModelView& model,
                                                   const std::vector<QConfigEntry>& mapping,
                                                   const LayerErrorMeasurement& measured) {
  std::vector<std::string> warnings;
  std::map<std::string, const QConfigEntry*> entry_of;
  for (const auto& e : mapping) entry_of[e.fqn] = &e;
  std::vector<Ranked> ranked;
  for (size_t i = 0; i < r.modules.size(); ++i) {
    ModuleFindings& m = r.modules[i];
    const auto it = entry_of.find(fused_ancestor(model, m.fqn));
    const QConfigEntry* e = it == entry_of.end() ? nullptr : it->second;
    const std::string activation = e ? e->activation : "default_observer";
    const std::string weight = e ? e->weight : "default_weight_observer";
    set_field(m.fields, "recommended_activation_observer", Value::string(activation));
    set_field(m.fields, "recommended_weight_observer", Value::string(weight));
    // "limited by" compares the weight's and the input's own SQNR under the same configuration (a
    // dynamic range is at least as good as the min/max one, which stands for it).
    const auto w = number_of(field(m.fields, weight == "default_per_channel_weight_observer"
                                                 ? "weight_sqnr_per_channel_db" : "weight_sqnr_per_tensor_db"));
    const auto in = number_of(field(m.fields, activation == "default_histogram_observer" ? "input_sqnr_histogram_db"
                                                                                          : "input_sqnr_minmax_db"));
    // Without the input's SQNR (never observed, NaN/inf) there is nothing to compare the weight's with.
    std::string limited_by;
    if (w && in) limited_by = *w <= *in ? "weight" : "input";
    std::optional<double> layer;
    if (measured.batches > 0) {
      const auto le = measured.layers.find(m.fqn);
      std::string why;
      const auto reason = r.null_reasons.find(m.fqn);
      if (reason != r.null_reasons.end()) {
        why = reason->second;
      } else if (le == measured.layers.end() || le->second.calls == 0) {
        why = "its output was not measured (its input was not observed, or it has no weight)";
      } else {
        layer = sqnr_db(le->second.signal, le->second.noise, &why);
      }
      if (!layer) {
        r.null_reasons[m.fqn] = why;  // the sqnr finding says it (report/findings.cpp)
        const std::string line = "quantization_error_detector: sqnr_db of '" + m.fqn + "' is null: " + why;
        r.warnings.push_back(line);
        warnings.push_back(line);
      }
    }
    set_field(m.fields, "sqnr_db", db_or_null(layer));
    set_field(m.fields, "sqnr_limited_by", limited_by.empty() ? Value::null() : Value::string(limited_by));
    if (layer) ranked.push_back({m.fqn, *layer, limited_by, i});
  }
  if (measured.batches == 0) {
    const std::string line = "quantization_error_detector: sqnr_db is null for every layer: " + measured.unavailable;
    r.warnings.push_back(line);
    warnings.push_back(line);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const Ranked& a, const Ranked& b) { return a.db < b.db; });
  const Value* worst_option = field(r.options, "worst_layers");
  const size_t worst = worst_option && worst_option->type == Value::Type::Int ? static_cast<size_t>(worst_option->i) : 10;
  if (ranked.size() > worst) ranked.resize(worst);
  Value list;
  list.type = Value::Type::List;
  for (const auto& k : ranked)
    list.list.push_back(Value::object({{"fqn", Value::string(k.fqn)},
                                       {"sqnr_db", Value::number(k.db)},
                                       {"limited_by", k.limited_by.empty() ? Value::null() : Value::string(k.limited_by)}}));
  r.summary = {{"worst_layers", list}, {"error_batches_used", Value::integer(measured.batches)}};
  for (auto& w : add_scheme_fields(r, measured)) warnings.push_back(w);
  r.text = error_text(r, ranked, measured) + scheme_text(r, measured);
  return warnings;
}

std::unique_ptr<Detector> make_quantization_error(const QuantizationErrorOptions& options) {
  bool known = false;
  for (const char* b : {"fbgemm", "qnnpack", "onednn", "x86"}) known |= options.backend == b;
  if (!known) throw UsageError("--backend must be one of fbgemm, qnnpack, onednn, x86 (got '" + options.backend + "')");
  if (!(options.histogram_min_gain_db >= 0.0) || !std::isfinite(options.histogram_min_gain_db))
    throw UsageError("--histogram-min-gain must be a finite number of dB, 0 or more");
  if (options.worst_layers < 1) throw UsageError("--worst must be 1 or more");
  if (options.min_sqnr_db && !std::isfinite(*options.min_sqnr_db)) throw UsageError("--min-sqnr must be a finite number");
  if (options.error_batches < 1) throw UsageError("--error-batches must be at least 1");
  return std::make_unique<QuantizationErrorDetector>(options);
}

}  // namespace qreport::detectors
