// The JSON report (schema v1, docs/json-schema.md). The detectors' modules, which hold nearly all of a
// report's values (a million on ViT-B/16), are written as they are walked; the other sections are small
// nlohmann documents written through the same JsonWriter (tests/report/test_json_writer.cpp: the same
// bytes as the whole document dumped and re-indented, as the report was written before).
#include <nlohmann/json.hpp>

#include "common/version.h"
#include "report/json_writer.h"
#include "report/report.h"

namespace qreport::report {

using ojson = nlohmann::ordered_json;

namespace {

void write_fields(JsonWriter& w, const detectors::Fields& fields) {
  w.begin_object();
  for (const auto& [k, v] : fields) {
    w.key(k);
    write_value(w, v);
  }
  w.end_object();
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

// An object's members into the object w has open.
void write_members(JsonWriter& w, const ojson& object) {
  for (const auto& [k, v] : object.items()) {
    w.key(k);
    write_ojson(w, v);
  }
}

// The sections after "detectors", in order, as one document.
ojson later_sections(const Report& r) {
  ojson j = ojson::object();
  ojson qmap = ojson::object(), emap = ojson::object();
  for (const auto& e : r.qconfig) {
    qmap[e.fqn] = {{"activation", e.activation}, {"weight", e.weight}};
    emap[e.fqn] = {{"input_activation", "_InputEqualizationObserver"},
                   {"weight", "_WeightEqualizationObserver"},
                   {"equalization_recommended", e.equalization_recommended}};
  }
  j["qconfig_mapping"] = qmap;
  j["equalization_mapping"] = emap;
  {
    const Pt2eSettings pt2e = pt2e_settings(r);
    ojson names = ojson::object();
    for (const auto& m : pt2e.modules) names[m.name] = m.quantized ? ojson(pt2e.is_dynamic ? "dynamic" : "static") : ojson(nullptr);
    j["pt2e"] = {{"quantizer", "X86InductorQuantizer"},
                 {"is_dynamic", pt2e.is_dynamic},
                 {"module_name_qconfig", names},
                 {"not_expressed", pt2e.not_expressed},
                 {"python", pt2e_python(pt2e)}};
  }
  auto db = [](const std::optional<double>& v) { return v ? ojson(*v) : ojson(nullptr); };
  if (r.simulation.ran) {
    ojson configs = ojson::object();
    for (const auto& c : r.simulation.configs) {
      ojson layers = ojson::object();
      for (const auto& [fqn, v] : c.layers) layers[fqn] = db(v);
      configs[c.name] = {{"output_sqnr_db", db(c.output_sqnr_db)}, {"layers_output_sqnr_db", layers}};
    }
    j["simulation"] = configs;
  }
  if (r.sensitivity.ran) {
    const auto& s = r.sensitivity;
    ojson layers = ojson::object();
    for (const auto& l : s.layers)
      layers[l.fqn] = {{"sensitivity_output_sqnr_db", db(l.enable_db)}, {"sensitivity_skip_output_sqnr_db", db(l.skip_db)}};
    j["sensitivity"] = {{"scheme", s.scheme},
                        {"batches", s.batches},
                        {"runs", s.disable_one ? "both" : "enable-one"},
                        {"all_quantized_output_sqnr_db", db(s.all_quantized_db)},
                        {"forwards", s.forwards},
                        {"not_quantized", s.not_quantized},
                        {"layers", layers}};
  }
  if (r.plan.ran) {
    const auto& p = r.plan;
    ojson curve = ojson::array();
    for (const auto& c : p.curve)
      curve.push_back({{"layers_kept", c.kept}, {"added", c.added.empty() ? ojson(nullptr) : ojson(c.added)},
                       {"output_sqnr_db", db(c.output_sqnr_db)}});
    j["plan"] = {{"scheme", p.scheme},
                 {"target_sqnr_db", p.target_sqnr_db},
                 {"reached", p.reached},
                 {"keep_as", p.keep_as},
                 {"keep_float", p.keep_float},
                 {"achieved_output_sqnr_db", db(p.achieved_output_sqnr_db)},
                 {"quantized_weight_fraction", p.quantized_weight_fraction},
                 {"curve", curve},
                 {"note", p.note},
                 {"python", plan_python(p)}};
  }
  j["warnings"] = r.warnings;  // strings are written from their bytes (JsonWriter): paths included
  return j;
}

}  // namespace

std::string to_json(const Report& r) {
  const ojson head = {{"schema_version", 1},
                      {"tool", {{"name", "qreport"}, {"version", QREPORT_VERSION}, {"libtorch", libtorch_version()}}},
                      {"model", {{"path", r.model_path}, {"sha256", r.model_sha256}, {"modules", r.model_modules}}},
                      {"calibration", {{"path", r.calib_path}, {"batches", r.batches}, {"device", r.device}}}};
  std::string out;
  JsonWriter w(out);
  w.begin_object();
  write_members(w, head);
  w.key("detectors");
  write_detectors(w, r);
  write_members(w, later_sections(r));
  w.end_object();
  out += '\n';
  return out;
}

}  // namespace qreport::report
