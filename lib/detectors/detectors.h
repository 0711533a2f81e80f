// Stage 5: PyTorch ModelReport's four detectors (reference spec §4). Each detector says which values it
// wants observed (requests) and turns the finished statistics into a typed result (report). JSON keys
// and strings are PyTorch's; only lib/report turns results into JSON or text.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "instrumentation/instrumentation.h"
#include "observers/observers.h"

namespace qreport::model { class ModelView; }

namespace qreport::detectors {

using instrumentation::Side;

// A statistic value: null, bool, integer, float (a float32 widened to double), string, list or object.
struct Value {
  enum class Type { Null, Bool, Int, Float, String, List, Object };
  Type type = Type::Null;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;
  std::vector<Value> list;
  std::vector<std::pair<std::string, Value>> members;  // Object, in order

  static Value null() { return {}; }
  static Value boolean(bool v) { Value x; x.type = Type::Bool; x.b = v; return x; }
  static Value integer(int64_t v) { Value x; x.type = Type::Int; x.i = v; return x; }
  static Value number(double v) { Value x; x.type = Type::Float; x.f = v; return x; }
  static Value string(std::string v) { Value x; x.type = Type::String; x.s = std::move(v); return x; }
  static Value object(std::vector<std::pair<std::string, Value>> m) {
    Value x;
    x.type = Type::Object;
    x.members = std::move(m);
    return x;
  }
  template <class T, class F>
  static Value list_of(const std::vector<T>& items, F make) {
    Value x;
    x.type = Type::List;
    x.list.reserve(items.size());  // a transformer's report builds about a million values: no regrowth
    for (const auto& it : items) x.list.push_back(make(it));
    return x;
  }
};

using Fields = std::vector<std::pair<std::string, Value>>;  // ordered as PyTorch's dicts
// The value stored under key, or nullptr.
const Value* find_field(const Fields& fields, const std::string& key);

struct ModuleFindings {
  std::string fqn;
  Fields fields;
};

// DetectorQConfigInfo (spec §2.3), merged across detectors into the qconfig and equalization mappings.
struct QConfigInfo {
  std::string fqn;
  bool is_activation_dynamic = false;
  bool is_weight_per_channel = false;
  bool is_equalization_recommended = false;
  // qreport's quantization-error detector: HistogramObserver's range gains enough over min/max.
  bool is_activation_histogram = false;
  // qreport's quantization-error detector: the weight SQNR per-channel weights gain over per-tensor ones
  // (negative: a loss). Where it was measured it decides the weight observer (merge_qconfig_info).
  std::optional<double> weight_per_channel_gain_db = std::nullopt;
};

struct DetectorResult {
  std::string name;             // PyTorch's detector name, e.g. "outlier_detector"
  Fields options;
  std::string text;             // PyTorch's report string
  std::vector<ModuleFindings> modules;
  Fields summary;               // detector-wide results after "modules" in JSON (qreport's own detectors)
  std::vector<QConfigInfo> qconfig_info;
  std::vector<std::string> warnings;
  // Why a module's figures are null (the error detector's, for the figures it completes later); not in JSON.
  std::map<std::string, std::string> null_reasons;
};

// One value a detector wants observed, and the statistics it wants of it.
struct ObservationRequest {
  std::string fqn;
  Side side = Side::Input;
  bool range = false;
  std::optional<int> minmax_axis;
  std::optional<std::pair<int, float>> percentile;  // (ch_axis, q)
  bool histogram = false;                           // HistogramObserver and the sum of squares
  std::optional<int> moments_axis;                  // LLM.int8() sums (observers::MomentsSummary)
};

// Finished statistics of the value observed for (fqn, side); nullptr when it was never observed.
class StatsLookup {
 public:
  virtual ~StatsLookup() = default;
  virtual const observers::ObservationPoint* find(const std::string& fqn, Side side) const = 0;
};

// The channel axis used for one module: of its input (negative: counted from the last axis, so -1 is
// the features of a Linear input of any rank), and of its weight (equalization).
struct AxisChoice {
  int input_axis = 1;
  int weight_axis = 1;
  std::string rule;  // why, for qreport inspect
};

// "auto" -> nullopt; "N" (N >= 0) -> N; anything else throws UsageError naming --ch-axis.
std::optional<int> parse_ch_axis(const std::string& text);

// --ch-axis for every module. fixed_axis(N) is PyTorch's behaviour: axis N of every input and weight.
// automatic() uses the axis each module's weight consumes (the last for Linear, LayerNorm and recurrent
// layers, 1 for convolutions and batch norms) and, for modules without one, the layout of their input
// as the graph's data flow shows it (instrumentation::Instrumenter::input_layout, or the exported
// program's), else axis 1.
class ChannelAxes {
 public:
  static ChannelAxes fixed_axis(int axis);
  // input_layout(fqn): the layout of module fqn's input as its front end's graph shows it (Unknown where
  // it is never called or the graph does not tell).
  static ChannelAxes automatic(const model::ModelView& model,
                               const std::function<instrumentation::LayoutGuess(const std::string&)>& input_layout);
  AxisChoice of(const std::string& fqn) const;
  bool is_auto() const { return !fixed_.has_value(); }
  Value option_value() const;  // the "ch_axis" option in reports: N or "auto"

 private:
  std::optional<int> fixed_ = 1;
  std::map<std::string, AxisChoice> per_module_;
};

class Detector {
 public:
  virtual ~Detector() = default;
  virtual std::string name() const = 0;
  virtual std::vector<ObservationRequest> requests(const model::ModelView& model, const ChannelAxes& axes) const = 0;
  // Modules the detector judges from their weights alone, with nothing observed (qreport inspect lists them).
  virtual std::vector<std::string> weight_only_modules(const model::ModelView&) const { return {}; }
  virtual DetectorResult report(const model::ModelView& model, const StatsLookup& stats,
                                const ChannelAxes& axes) const = 0;
};

struct PerChannelOptions {
  std::string backend = "x86";
  bool weight_per_channel = false;  // the qconfig assumed for float modules (default_qconfig: per-tensor)
};
struct DynamicStaticOptions {
  double tolerance = 0.5;
};
// PyTorch's module-level rule for input-weight equalization (DEFAULT_RECOMMEND_INPUT_WEIGHT_CHANNEL_RATIO):
// recommended for a module when at least this share of its channels would benefit. The detector's text,
// the equalization mapping and the --fail-on equalization finding all follow it.
constexpr double kEqualizationChannelShare = 0.4;
struct EqualizationOptions {
  double ratio_threshold = 0.5;
};
struct OutlierOptions {
  double ratio_threshold = 3.5;
  double reference_percentile = 0.975;
  double fraction_batches_used_threshold = 0.95;
};
// A sparse channel: its reference percentile was 0 in some batch where its max was not (a channel after a
// ReLU that is mostly zero). PyTorch's ratio max / 0 is inf, which nan_to_num makes FLT_MAX, so the batch
// average of the ratio (after the detector's fix-ups) stays near FLT_MAX / batches_used or above: no real
// ratio comes close. Such a ratio says nothing about outliers (docs/differences.md).
bool is_sparse_channel(double ratio, int64_t batches_used);

struct QuantizationErrorOptions {
  std::string backend = "x86";          // sets reduce_range as get_default_qconfig(backend) does
  // The mapping uses HistogramObserver where its range gains this many dB: twice the largest error of
  // the SQNR estimate in the tests, so a recommendation is never made on estimation noise alone.
  double histogram_min_gain_db = 0.5;
  int worst_layers = 10;                // how many of the lowest-SQNR layers are ranked
  std::optional<double> min_sqnr_db;    // the --fail-on sqnr bound
  // --error-batches: how many calibration batches (the first ones) the second pass that measures each
  // layer's output SQNR runs over (docs/quantization-error.md says why 1 is the default).
  int64_t error_batches = 1;
};

// Throw UsageError for out-of-range options, with the option's command-line name.
std::unique_ptr<Detector> make_per_channel(const PerChannelOptions& options);
std::unique_ptr<Detector> make_dynamic_static(const DynamicStaticOptions& options);
std::unique_ptr<Detector> make_equalization(const EqualizationOptions& options);
std::unique_ptr<Detector> make_outlier(const OutlierOptions& options);
std::unique_ptr<Detector> make_quantization_error(const QuantizationErrorOptions& options);

// The outlier detector's "llm_int8" summary (docs/json-schema.md): per Linear input feature its max |x|
// and share of tokens with |x| >= 6, each Linear input's kurtosis, and the features where LLM.int8()'s
// outlier rule holds model-wide. {"unavailable": reason} where the statistics are not there (qreport
// report, merge and distributed runs: statistics files do not hold them) or the axes are not --ch-axis auto.
constexpr double kLlmMinLayerFraction = 0.25, kLlmMinTokenFraction = 0.06;
Value llm_int8_summary(const model::ModelView& model, const StatsLookup& stats, const ChannelAxes& axes);

// "per_channel" or "per_channel_detector" -> "per_channel_detector"; nullopt for an unknown name.
std::optional<std::string> canonical_detector_name(const std::string& name);
// The names of every detector (PyTorch's four, then qreport's quantization_error_detector), in the
// order qreport runs and reports them.
const std::vector<std::string>& all_detector_names();

// Float helpers shared by detectors: float32 vectors to Values, non-finite values as null in JSON.
// Fields from a braced list, its values moved rather than copied: an initializer_list's elements are
// const, so `Fields{{key, value}, ...}` copies every value, a per-channel list of thousands included.
struct FieldInit {
  FieldInit(std::string k, Value v) : key(std::move(k)), value(std::move(v)) {}
  std::string key;
  mutable Value value;  // moved out by fields()
};
Fields fields(std::initializer_list<FieldInit> items);
Value float_list(const std::vector<float>& v);
Value int_list(const std::vector<int32_t>& v);
Value bool_list(const std::vector<bool>& v);
Value float_or_null(std::optional<float> v);

// generate_qconfig_mapping / generate_equalization_mapping (spec §3.5): per fqn, in module order.
struct QConfigEntry {
  std::string fqn;
  // "default_observer", "default_histogram_observer" or "default_dynamic_quant_observer"
  std::string activation;
  std::string weight;      // "default_weight_observer" or "default_per_channel_weight_observer"
  bool equalization_recommended = false;
  // Whether X86InductorQuantizer.set_module_name_qconfig can name this layer (the report's "pt2e" key,
  // lib/report/pt2e_report.cpp). Unreachable: a layer a MultiheadAttention's forward applies (out_proj),
  // whose exported linear carries only the MultiheadAttention in nn_module_stack. Skipped: the .pt2
  // report's "<mha>.in_proj" pseudo-module, left out so that the .pt and .pt2 reports say the same.
  // NoAnnotator: a class the quantizer has no pattern for under a module name (it matches exactly
  // nn.Linear and nn.Conv2d, nn.Conv1d only in a fused ConvReLU1d): naming it quantizes nothing, though
  // None still keeps it in float.
  enum class Pt2e { Named, Unreachable, Skipped, NoAnnotator };
  Pt2e pt2e = Pt2e::Named;
};

// One layer's output error, measured on data (lib/pipeline/layer_error.cpp): the Linear/Conv applied to
// its fake-quantized input and weight against the float layer on the same input, energies summed over
// the calls of the batches measured.
struct LayerEnergy {
  double signal = 0.0;  // sum of y^2, y the float layer's output
  double noise = 0.0;   // sum of (y_q - y)^2
  int64_t calls = 0;
};
// One layer under one --schemes scheme (lib/schemes), measured in the same pass: the weight's energies,
// the input's (absent for weight-only schemes), and the layer's local output error, all summed in float64.
struct SchemeEnergy {
  std::string not_applicable;  // why the scheme leaves this layer unquantized ("" where it was measured)
  double weight_signal = 0.0, weight_noise = 0.0;
  bool has_input = false;
  double input_signal = 0.0, input_noise = 0.0;
  double output_signal = 0.0, output_noise = 0.0;
  // smoothquant: the alpha chosen, and the local output noise of int8-dynamic without smoothing (the gain's
  // reference).
  std::optional<double> alpha;
  double reference_noise = 0.0;
};
struct LayerErrorMeasurement {
  int64_t batches = 0;        // the batches the second pass ran over (0: no pass, e.g. qreport report)
  int64_t total_batches = 0;  // the calibration batches
  std::string unavailable;    // why there is no measurement, when batches == 0
  std::map<std::string, LayerEnergy> layers;  // by Linear/Conv fqn
  // --schemes, in the order given ("int8-static" is completed from the fields above), and per layer
  // (fqn) and scheme name what was measured; a layer or scheme missing here was not measured.
  std::vector<std::string> schemes;
  std::map<std::string, std::map<std::string, SchemeEnergy>> scheme_energy;
};

// Completes the quantization-error detector's result once the mapping is decided and the layers'
// output error measured: each layer's recommended observers (the mapping's entry, so that the report
// has one recommendation), sqnr_db (the layer's output SQNR under that configuration), sqnr_limited_by
// (from the weight and input SQNRs of that configuration), worst_layers and the report text. Returns
// the warnings it adds (also appended to result.warnings).
std::vector<std::string> finish_quantization_error(DetectorResult& result, const model::ModelView& model,
                                                   const std::vector<QConfigEntry>& mapping,
                                                   const LayerErrorMeasurement& measured);

// The one decision of what qreport recommends per layer: the qconfig mapping, the error detector's
// recommended observers, --simulate's "recommended" run and the layer's output SQNR all read it.
std::vector<QConfigEntry> merge_qconfig_info(const model::ModelView& model, const std::vector<DetectorResult>& results);
// The mapping's entry that applies to fqn (its own, or its fused ancestor's); nullptr when none.
const QConfigEntry* entry_for(const model::ModelView& model, const std::vector<QConfigEntry>& mapping,
                              const std::string& fqn);
// The outermost fused module (ConvReLU2d, LinearReLU, ...) that contains fqn, or fqn itself.
std::string fused_ancestor(const model::ModelView& model, const std::string& fqn);

}  // namespace qreport::detectors
