#include "report/saved_report.h"

#include "common/errors.h"

namespace qreport::report {
namespace {

detectors::Value value_from_json(const nlohmann::ordered_json& v) {
  using detectors::Value;
  if (v.is_boolean()) return Value::boolean(v.get<bool>());
  if (v.is_number_integer()) return Value::integer(v.get<int64_t>());
  if (v.is_number()) return Value::number(v.get<double>());
  if (v.is_string()) return Value::string(v.get<std::string>());
  if (v.is_array()) {
    Value list;
    list.type = Value::Type::List;
    for (const auto& x : v) list.list.push_back(value_from_json(x));
    return list;
  }
  if (v.is_object()) {
    Value obj;
    obj.type = Value::Type::Object;
    for (const auto& [k, x] : v.items()) obj.members.emplace_back(k, value_from_json(x));
    return obj;
  }
  return Value::null();
}

detectors::Fields fields_from_json(const nlohmann::ordered_json& o) {
  detectors::Fields f;
  if (o.is_object())
    for (const auto& [k, v] : o.items()) f.emplace_back(k, value_from_json(v));
  return f;
}

}  // namespace

nlohmann::ordered_json parse_saved_report(const std::string& text, const std::string& name) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const std::exception& e) {
    throw InputError(name + " is not valid JSON: " + first_line(e.what()));
  }
  if (!j.is_object() || !j.contains("schema_version") || !j.contains("detectors") || !j["detectors"].is_object() ||
      (j.contains("tool") && j["tool"].is_object() && j["tool"].value("name", "") != "qreport"))
    throw InputError(name + " is not a qreport JSON report (no schema_version/detectors); write one with --format json");
  if (j["schema_version"] != 1)
    throw InputError(name + " has report schema_version " + j["schema_version"].dump() + " (this qreport reads 1)");
  return j;
}

Report report_from_json(const nlohmann::ordered_json& j) {
  Report r;
  r.model_path = j.contains("model") ? j["model"].value("path", "") : "";
  r.model_sha256 = j.contains("model") ? j["model"].value("sha256", "") : "";
  for (const auto& [name, body] : j["detectors"].items()) {
    detectors::DetectorResult res;
    res.name = name;
    if (body.contains("options")) res.options = fields_from_json(body["options"]);
    if (body.contains("modules") && body["modules"].is_object())
      for (const auto& [fqn, fields] : body["modules"].items()) res.modules.push_back({fqn, fields_from_json(fields)});
    for (const auto& [key, v] : body.items())
      if (key != "options" && key != "modules" && key != "report") res.summary.emplace_back(key, value_from_json(v));
    if (body.contains("report") && body["report"].is_string()) res.text = body["report"].get<std::string>();
    r.results.push_back(std::move(res));
  }
  return r;
}

}  // namespace qreport::report
