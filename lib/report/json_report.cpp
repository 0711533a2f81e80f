#include <cmath>
#include <nlohmann/json.hpp>

#include "common/version.h"
#include "report/json_text.h"
#include "report/report.h"

namespace qreport::report {

using ojson = nlohmann::ordered_json;


namespace {

ojson to_json_value(const detectors::Value& v) {
  using T = detectors::Value::Type;
  switch (v.type) {
    case T::Null: return nullptr;
    case T::Bool: return v.b;
    case T::Int: return v.i;
    case T::Float: return std::isfinite(v.f) ? ojson(v.f) : ojson(nullptr);  // JSON has no inf/nan
    case T::String: return v.s;
    case T::List: {
      ojson a = ojson::array();
      for (const auto& x : v.list) a.push_back(to_json_value(x));
      return a;
    }
    case T::Object: {
      ojson o = ojson::object();
      for (const auto& [k, x] : v.members) o[k] = to_json_value(x);
      return o;
    }
  }
  return nullptr;
}

ojson fields_json(const detectors::Fields& fields) {
  ojson o = ojson::object();
  for (const auto& [k, v] : fields) o[k] = to_json_value(v);
  return o;
}

}  // namespace

std::string to_json(const Report& r) {
  ojson j;
  j["schema_version"] = 1;
  j["tool"] = {{"name", "qreport"}, {"version", QREPORT_VERSION}, {"libtorch", libtorch_version()}};
  j["model"] = {{"path", json_bytes(r.model_path)}, {"sha256", r.model_sha256}, {"modules", r.model_modules}};
  j["calibration"] = {{"path", json_bytes(r.calib_path)}, {"batches", r.batches}, {"device", r.device}};
  ojson dets = ojson::object();
  for (const auto& res : r.results) {
    ojson modules = ojson::object();
    for (const auto& m : res.modules) modules[m.fqn] = fields_json(m.fields);
    dets[res.name] = {{"options", fields_json(res.options)}, {"report", res.text}, {"modules", modules}};
    for (const auto& [k, v] : res.summary) dets[res.name][k] = to_json_value(v);
  }
  j["detectors"] = dets;
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
  if (r.simulation.ran) {
    auto db = [](const std::optional<double>& v) { return v ? ojson(*v) : ojson(nullptr); };
    ojson configs = ojson::object();
    for (const auto& c : r.simulation.configs) {
      ojson layers = ojson::object();
      for (const auto& [fqn, v] : c.layers) layers[fqn] = db(v);
      configs[c.name] = {{"output_sqnr_db", db(c.output_sqnr_db)}, {"layers_output_sqnr_db", layers}};
    }
    j["simulation"] = configs;
  }
  auto opt_db = [](const std::optional<double>& v) { return v ? ojson(*v) : ojson(nullptr); };
  if (r.sensitivity.ran) {
    const auto& s = r.sensitivity;
    ojson layers = ojson::object();
    for (const auto& l : s.layers)
      layers[l.fqn] = {{"sensitivity_output_sqnr_db", opt_db(l.enable_db)},
                       {"sensitivity_skip_output_sqnr_db", opt_db(l.skip_db)}};
    j["sensitivity"] = {{"scheme", s.scheme},
                        {"batches", s.batches},
                        {"runs", s.disable_one ? "both" : "enable-one"},
                        {"all_quantized_output_sqnr_db", opt_db(s.all_quantized_db)},
                        {"forwards", s.forwards},
                        {"not_quantized", s.not_quantized},
                        {"layers", layers}};
  }
  if (r.plan.ran) {
    const auto& p = r.plan;
    ojson curve = ojson::array();
    for (const auto& c : p.curve)
      curve.push_back({{"layers_kept", c.kept}, {"added", c.added.empty() ? ojson(nullptr) : ojson(c.added)},
                       {"output_sqnr_db", opt_db(c.output_sqnr_db)}});
    j["plan"] = {{"scheme", p.scheme},
                 {"target_sqnr_db", p.target_sqnr_db},
                 {"reached", p.reached},
                 {"keep_as", p.keep_as},
                 {"keep_float", p.keep_float},
                 {"achieved_output_sqnr_db", opt_db(p.achieved_output_sqnr_db)},
                 {"quantized_weight_fraction", p.quantized_weight_fraction},
                 {"curve", curve},
                 {"note", p.note},
                 {"python", plan_python(p)}};
  }
  j["warnings"] = ojson::array();
  for (const auto& w : r.warnings) j["warnings"].push_back(json_bytes(w));
  return indent_json(j.dump()) + "\n";
}

}  // namespace qreport::report
