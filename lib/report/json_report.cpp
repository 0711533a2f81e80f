// The JSON report (schema v1, docs/json-schema.md), written as it is walked: JsonWriter writes what
// nlohmann's document, dumped and re-indented (indent_json), wrote before (tests/report/test_json_writer.cpp).
#include <optional>

#include "common/version.h"
#include "report/json_writer.h"
#include "report/report.h"

namespace qreport::report {

namespace {

void write_value(JsonWriter& w, const detectors::Value& v) {
  using T = detectors::Value::Type;
  switch (v.type) {
    case T::Null: w.null(); return;
    case T::Bool: w.boolean(v.b); return;
    case T::Int: w.integer(v.i); return;
    case T::Float: w.number(v.f); return;  // JSON has no inf/nan: null
    case T::String: w.string(v.s); return;
    case T::List:
      w.begin_array();
      for (const auto& x : v.list) write_value(w, x);
      w.end_array();
      return;
    case T::Object:
      w.begin_object();
      for (const auto& [k, x] : v.members) {
        w.key(k);
        write_value(w, x);
      }
      w.end_object();
      return;
  }
  w.null();
}

void write_fields(JsonWriter& w, const detectors::Fields& fields) {
  w.begin_object();
  for (const auto& [k, v] : fields) {
    w.key(k);
    write_value(w, v);
  }
  w.end_object();
}

void write_db(JsonWriter& w, const std::optional<double>& v) {
  if (v)
    w.number(*v);
  else
    w.null();
}

void write_strings(JsonWriter& w, const std::vector<std::string>& items) {
  w.begin_array();
  for (const auto& s : items) w.string(s);
  w.end_array();
}

void write_detectors(JsonWriter& w, const Report& r) {
  w.begin_object();
  for (const auto& res : r.results) {
    w.key(res.name);
    w.begin_object();
    w.key("options");
    write_fields(w, res.options);
    w.key("report");
    w.string(res.text);
    w.key("modules");
    w.begin_object();
    for (const auto& m : res.modules) {
      w.key(m.fqn);
      write_fields(w, m.fields);
    }
    w.end_object();
    for (const auto& [k, v] : res.summary) {
      w.key(k);
      write_value(w, v);
    }
    w.end_object();
  }
  w.end_object();
}

void write_mappings(JsonWriter& w, const Report& r) {
  w.key("qconfig_mapping");
  w.begin_object();
  for (const auto& e : r.qconfig) {
    w.key(e.fqn);
    w.begin_object();
    w.key("activation");
    w.string(e.activation);
    w.key("weight");
    w.string(e.weight);
    w.end_object();
  }
  w.end_object();
  w.key("equalization_mapping");
  w.begin_object();
  for (const auto& e : r.qconfig) {
    w.key(e.fqn);
    w.begin_object();
    w.key("input_activation");
    w.string("_InputEqualizationObserver");
    w.key("weight");
    w.string("_WeightEqualizationObserver");
    w.key("equalization_recommended");
    w.boolean(e.equalization_recommended);
    w.end_object();
  }
  w.end_object();
  const Pt2eSettings pt2e = pt2e_settings(r);
  w.key("pt2e");
  w.begin_object();
  w.key("quantizer");
  w.string("X86InductorQuantizer");
  w.key("is_dynamic");
  w.boolean(pt2e.is_dynamic);
  w.key("module_name_qconfig");
  w.begin_object();
  for (const auto& m : pt2e.modules) {
    w.key(m.name);
    if (m.quantized)
      w.string(pt2e.is_dynamic ? "dynamic" : "static");
    else
      w.null();
  }
  w.end_object();
  w.key("not_expressed");
  write_strings(w, pt2e.not_expressed);
  w.key("python");
  w.string(pt2e_python(pt2e));
  w.end_object();
}

void write_simulation(JsonWriter& w, const Simulation& sim) {
  w.key("simulation");
  w.begin_object();
  for (const auto& c : sim.configs) {
    w.key(c.name);
    w.begin_object();
    w.key("output_sqnr_db");
    write_db(w, c.output_sqnr_db);
    w.key("layers_output_sqnr_db");
    w.begin_object();
    for (const auto& [fqn, v] : c.layers) {
      w.key(fqn);
      write_db(w, v);
    }
    w.end_object();
    w.end_object();
  }
  w.end_object();
}

void write_sensitivity(JsonWriter& w, const Sensitivity& s) {
  w.key("sensitivity");
  w.begin_object();
  w.key("scheme");
  w.string(s.scheme);
  w.key("batches");
  w.integer(static_cast<int64_t>(s.batches));
  w.key("runs");
  w.string(s.disable_one ? "both" : "enable-one");
  w.key("all_quantized_output_sqnr_db");
  write_db(w, s.all_quantized_db);
  w.key("forwards");
  w.integer(static_cast<int64_t>(s.forwards));
  w.key("not_quantized");
  write_strings(w, s.not_quantized);
  w.key("layers");
  w.begin_object();
  for (const auto& l : s.layers) {
    w.key(l.fqn);
    w.begin_object();
    w.key("sensitivity_output_sqnr_db");
    write_db(w, l.enable_db);
    w.key("sensitivity_skip_output_sqnr_db");
    write_db(w, l.skip_db);
    w.end_object();
  }
  w.end_object();
  w.end_object();
}

void write_plan(JsonWriter& w, const KeepPlan& p) {
  w.key("plan");
  w.begin_object();
  w.key("scheme");
  w.string(p.scheme);
  w.key("target_sqnr_db");
  w.number(p.target_sqnr_db);
  w.key("reached");
  w.boolean(p.reached);
  w.key("keep_as");
  w.string(p.keep_as);
  w.key("keep_float");
  write_strings(w, p.keep_float);
  w.key("achieved_output_sqnr_db");
  write_db(w, p.achieved_output_sqnr_db);
  w.key("quantized_weight_fraction");
  w.number(p.quantized_weight_fraction);
  w.key("curve");
  w.begin_array();
  for (const auto& c : p.curve) {
    w.begin_object();
    w.key("layers_kept");
    w.integer(static_cast<int64_t>(c.kept));
    w.key("added");
    if (c.added.empty())
      w.null();
    else
      w.string(c.added);
    w.key("output_sqnr_db");
    write_db(w, c.output_sqnr_db);
    w.end_object();
  }
  w.end_array();
  w.key("note");
  w.string(p.note);
  w.key("python");
  w.string(plan_python(p));
  w.end_object();
}

}  // namespace

std::string to_json(const Report& r) {
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  w.key("schema_version");
  w.integer(1);
  w.key("tool");
  w.begin_object();
  w.key("name");
  w.string("qreport");
  w.key("version");
  w.string(QREPORT_VERSION);
  w.key("libtorch");
  w.string(libtorch_version());
  w.end_object();
  w.key("model");
  w.begin_object();
  w.key("path");
  w.string(r.model_path);
  w.key("sha256");
  w.string(r.model_sha256);
  w.key("modules");
  w.integer(static_cast<int64_t>(r.model_modules));
  w.end_object();
  w.key("calibration");
  w.begin_object();
  w.key("path");
  w.string(r.calib_path);
  w.key("batches");
  w.integer(static_cast<int64_t>(r.batches));
  w.key("device");
  w.string(r.device);
  w.end_object();
  w.key("detectors");
  write_detectors(w, r);
  write_mappings(w, r);
  if (r.simulation.ran) write_simulation(w, r.simulation);
  if (r.sensitivity.ran) write_sensitivity(w, r.sensitivity);
  if (r.plan.ran) write_plan(w, r.plan);
  w.key("warnings");
  w.begin_array();
  for (const auto& warning : r.warnings) w.string(warning);
  w.end_array();
  w.end_object();
  out += '\n';
  return out;
}

}  // namespace qreport::report
