// Stage 6: reports. Turns detector results into the JSON report (schema v1, docs/json-schema.md) for
// machines and a text report for people. Output is a pure function of its input: same input, same bytes.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "detectors/detectors.h"

namespace qreport::report {

// --simulate: the model run with fake-quantized Linear/Conv inputs and weights, against the float model.
struct SimulatedConfig {
  std::string name;                        // "default_qconfig" or "recommended"
  std::optional<double> output_sqnr_db;    // the model's output(s) against the float model's
  // Per observed call site (graph order): its output against the float model's, where the error enters.
  std::vector<std::pair<std::string, std::optional<double>>> layers;
};
struct Simulation {
  bool ran = false;
  std::vector<SimulatedConfig> configs;
};

// --sensitivity / --target-sqnr (docs/quantization-error.md, "Sensitivity and the plan"): the model output
// SQNR with one layer quantized (enable-one) and with every layer but one quantized (disable-one), under
// one scheme, on the first --sensitivity-batches batches. The per-layer figures also go into the error
// detector's modules (sensitivity_output_sqnr_db, sensitivity_skip_output_sqnr_db).
struct SensitivityLayer {
  std::string fqn;
  std::optional<double> enable_db, skip_db;
};
struct Sensitivity {
  bool ran = false;
  std::string scheme;
  size_t batches = 0;
  std::optional<double> all_quantized_db;  // every candidate layer quantized
  bool disable_one = true;                 // the disable-one runs ran (--sensitivity-runs both)
  std::vector<SensitivityLayer> layers;    // the candidates, in graph order
  std::vector<std::string> not_quantized;  // layers the scheme leaves in float (torchao defines none)
  size_t forwards = 0;                     // model forwards the pass ran, per batch (its cost)
};
// --target-sqnr: the layers to keep (in float; at int8-weight-only under an int4 scheme) so that the model
// output SQNR reaches the target; every curve point is one simulated run, the last the plan's own.
struct PlanPoint {
  size_t kept = 0;
  std::string added;  // the layer added to the kept list at this point ("" for none kept)
  std::optional<double> output_sqnr_db;
};
struct KeepPlan {
  bool ran = false;
  std::string scheme;
  std::string keep_as;  // "float", or "int8-weight-only" under an int4 scheme
  double target_sqnr_db = 0.0;
  bool reached = false;
  std::vector<std::string> keep_float;
  std::optional<double> achieved_output_sqnr_db;
  double quantized_weight_fraction = 0.0;
  std::vector<PlanPoint> curve;
  std::string note;  // how it was found, or why the target is out of reach
};
// The plan as Python to paste (plan_report.cpp; docs/python.md): torchao's quantize_ with a filter_fn that
// leaves the kept layers out, or for int8-static the report's QConfigMapping with None for them.
std::string plan_python(const KeepPlan& plan);

// issue 25 item 5, the report's "pt2e" key (pt2e_report.cpp; docs/python.md, "PT2E"): the report's advice
// as torchao 0.18.0's X86InductorQuantizer settings. One quantizer is static or dynamic as a whole
// (it skips a config of the other kind), so is_dynamic is one choice; every module set is quantized with
// get_default_x86_inductor_quantization_config(is_dynamic) or kept in float (None).
struct Pt2eModule {
  std::string name;        // what set_module_name_qconfig is given: the layer's fqn
  bool quantized = false;  // false: set to None (kept in float)
};
struct Pt2eSettings {
  bool is_dynamic = false;
  std::vector<Pt2eModule> modules;         // module order (the qconfig mapping's)
  std::vector<std::string> not_expressed;  // advice the quantizer cannot carry, one line each
};
struct Report;
Pt2eSettings pt2e_settings(const Report& report);
std::string pt2e_python(const Pt2eSettings& settings);

struct Report {
  std::string model_path;
  std::string model_sha256;
  size_t model_modules = 0;
  std::string calib_path;
  size_t batches = 0;
  std::string device;
  std::vector<detectors::DetectorResult> results;   // in the order the detectors ran
  std::vector<detectors::QConfigEntry> qconfig;      // qconfig_mapping and equalization_mapping
  Simulation simulation;                             // filled by --simulate
  Sensitivity sensitivity;                           // filled by --sensitivity or --target-sqnr
  KeepPlan plan;                                     // filled by --target-sqnr
  bool emit = true;  // false on the ranks of a distributed analyze other than 0: they write nothing
  std::vector<std::string> call_order;               // call sites in graph order (the HTML overview's order)
  std::vector<std::string> warnings;
};

// The PT2E settings as text and as an HTML section ("" where the report does not show them: see pt2e_report.cpp).
std::string pt2e_text(const Report& report);
std::string pt2e_html(const Report& report);

// A finding a CI gate can act on (--fail-on): one module, one kind of problem.
struct Finding {
  std::string kind;    // "outliers", "dynamic", "equalization" or "per_channel"
  std::string fqn;
  std::string detail;  // e.g. "channels 0, 3 have outliers"
};
// The kinds --fail-on accepts, in report order.
const std::vector<std::string>& finding_kinds();
// Every finding of the report, by detector then module order.
std::vector<Finding> findings(const Report& report);
// What the report notes but no gate acts on, as findings of kind "sparse": input channels whose reference
// percentile is 0 (after a ReLU), whose max / percentile ratio says nothing about outliers.
std::vector<Finding> notes(const Report& report);
// PyTorch's per-channel detector text (kept verbatim) says per-channel weights are possible, not that they
// help: where the recommended mapping keeps a listed layer per tensor (per-channel measured no gain), one
// line saying so, printed after that text in text and HTML; "" otherwise.
std::string per_channel_caveat(const Report& report);

// --fail-on gates that could not fail (lib/report/gates.cpp). Before calibration: throws UsageError when a
// gated kind's detector is not among `detectors` (canonical names; empty: all run), or sqnr is gated
// without --min-sqnr. After: one line naming every gated kind whose detector judged no module, or "".
void check_gates_runnable(const std::string& fail_on_arg, const std::vector<std::string>& kinds,
                          const std::vector<std::string>& detectors, const std::string& detectors_arg,
                          bool has_min_sqnr);
std::string unevaluated_gates(const Report& report, const std::vector<std::string>& kinds);
// diff --max-sqnr-drop on a report without SQNR figures: why it cannot be evaluated, or "".
std::string sqnr_drop_unevaluable(const Report& report, const std::string& name);

// What `qreport inspect` shows: the module tree, the call sites found, and what each detector would observe.
struct Inspection {
  struct Module {
    std::string fqn, type_name, kind;
    int depth = 0;
    int call_sites = 0;   // how many times forward calls it as a leaf (0: inlined, or never called)
    bool leaf = false;    // a call leaf (not inlined)
    std::string functional;  // called through this op applying its weight (aten::linear), "" otherwise
  };
  struct Observation {
    std::string detector, fqn, side;
    std::string site;       // the call site that observes it ("" for the root); empty with observed=false
    bool observed = false;  // false: neither the module nor an ancestor has a call site
    bool fallback = false;  // observed at an ancestor's call site (parent-fqn fallback)
    std::string statistics; // e.g. "min/max ch_axis=1, percentile q=0.975 ch_axis=1"
    std::string axis_rule;  // why that channel axis (--ch-axis auto), "" where no axis is involved
    bool weight_only = false;  // read from the model's weights, nothing observed (per-channel detector)
  };
  std::string model_path;
  std::vector<Module> modules;
  std::vector<std::string> call_sites;  // in graph order
  std::vector<Observation> observations;
  std::vector<std::string> fast_paths;  // fused ops bypassed: the slow path runs instead
  std::string ch_axis;                  // "auto" or N
  std::vector<std::string> warnings;
};
std::string to_json(const Inspection& inspection);
std::string to_text(const Inspection& inspection);

// The sensitivity bars and the plan's curve (plan_report.cpp): text, and HTML sections ("" when not run).
std::string sensitivity_text(const Report& report);
std::string sensitivity_html(const Report& report);
// The plan's curve as inline SVG, to sit beside the HTML overview chart ("" without a plan), and the dB scale
// (0 to this) that it and the sensitivity bars share.
std::string plan_curve_html(const Report& report);
double sensitivity_scale_db(const Report& report);
// --fail-on plan: the finding line when the plan did not reach its target, else "".
std::string plan_finding(const Report& report);

// Self-contained HTML (inline CSS and SVG, no script, no network): a section per detector with tables
// and plots.
std::string to_html(const Report& report);
// The outlier detector's "llm_int8" summary when it is an object (not null), and its text and HTML
// (llm_report.cpp).
const detectors::Value* llm_int8_of(const Report& report);
std::string llm_int8_text(const detectors::Value& summary);
std::string llm_int8_html(const detectors::Value& summary);

// The tensor-level and channel-level tables of a saved JSON report (like ModelReportVisualizer's),
// keeping modules whose fqn contains module_filter and features whose name contains feature_filter.
// Throws InputError, naming `name` and the JSON path, when the text is not a qreport JSON report its
// reader can use (the schema walk of saved_report.h).
std::string tables_from_json(const std::string& json_text, const std::string& module_filter,
                             const std::string& feature_filter, const std::string& name = "the report");

// qreport diff: what changed between two saved reports (docs/usage.md, "qreport diff").
struct SettingChange {
  std::string key, old_value, new_value;  // "outlier_detector.ch_axis", values as JSON text
};
struct FindingChange {
  std::string kind, fqn, old_detail, new_detail;
};
// One SQNR figure that differs between the two reports: a detector's per-module value in dB whose key
// names an SQNR (is_sqnr_key: "sqnr_db", "input_sqnr_minmax_db", ..., never a gain), or a simulated
// configuration's layer output ("simulation.recommended", call site, "layers_output_sqnr_db").
struct DecibelChange {
  std::string detector, fqn, key;
  std::optional<double> old_db, new_db;  // nullopt: null in that report (not measurable; its warnings say why)
};
// The model's output SQNR of one simulated configuration (--simulate), in either report.
struct ModelOutputSqnr {
  std::string config;                   // "default_qconfig", "recommended"
  bool in_old = false, in_new = false;  // whether that report simulated it
  std::optional<double> old_db, new_db;
};
struct DiffOptions {
  double min_change_db = 0.05;  // --min-change: smaller SQNR changes are not listed (they still gate)
  // --max-sqnr-drop is given: a report without SQNR figures is a usage error (sqnr_drop_unevaluable).
  bool gate_sqnr_drop = false;
};
struct ReportDiff {
  std::string old_name, new_name, old_sha256, new_sha256;
  double min_change_db = 0.05;
  std::vector<SettingChange> settings_changed;
  std::vector<std::string> modules_added, modules_removed;  // sorted
  std::vector<Finding> appeared, disappeared;
  std::vector<FindingChange> changed;
  std::vector<ModelOutputSqnr> model_output;  // in the new report's order, then the old one's
  std::vector<DecibelChange> decibels;        // every SQNR figure of a module in both that differs, sorted
  std::vector<std::string> warnings;
};
// Whether the diff lists a change: by more than min_change_db, or to or from null.
bool listed(const ReportDiff& diff, const DecibelChange& change);
// Throws InputError (naming the file and the JSON path) when either text is not a qreport JSON report of
// schema version 1 that its readers can use.
ReportDiff diff_reports(const std::string& old_text, const std::string& new_text, const std::string& old_name,
                        const std::string& new_name, const DiffOptions& options = {});
// The --max-sqnr-drop gate: one line per SQNR figure (model output first) that dropped by more than
// max_drop or became null, e.g. "fc1 sqnr_db (quantization_error_detector) dropped by 8.50 dB (31.25 ->
// 22.75), more than --max-sqnr-drop 3".
std::vector<std::string> drops_beyond(const ReportDiff& diff, double max_drop);
std::string to_text(const ReportDiff& diff);
std::string to_json(const ReportDiff& diff);
std::string to_html(const ReportDiff& diff);


std::string to_json(const Report& report);  // 2-space indented, ends with a newline
std::string to_text(const Report& report);

}  // namespace qreport::report
