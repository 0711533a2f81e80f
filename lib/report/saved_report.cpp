#include "report/saved_report.h"

#include <cmath>
#include <unordered_map>

#include "common/errors.h"
#include "report/json_value.h"

namespace qreport::report {
namespace {

using detectors::Value;
using Type = Value::Type;
using Member = std::pair<std::string, Value>;

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// A value for a message: short JSON text (a string shows its characters, escaped, on one line).
std::string excerpt(const Value& v) {
  std::string t = json_text(v);
  return t.size() > 60 ? t.substr(0, 57) + "..." : t;
}

Member* find(Value& object, const char* key) {
  for (auto& m : object.members)
    if (m.first == key) return &m;
  return nullptr;
}

// How a per-module field that findings() or diff reads must look. Keys not listed (and not in dB) are
// read as they are: tables show any value, and no reader interprets them.
enum class Rule { Any, Bool, BoolOrNull, BoolList, StringOrNull, Decibels };

Rule field_rule(const std::string& key) {
  if (ends_with(key, "_db")) return Rule::Decibels;
  static const std::unordered_map<std::string, Rule> rules = {
      {"per_channel_quantization_supported", Rule::Bool},
      {"per_channel_quantization_used", Rule::Bool},
      {"dynamic_recommended", Rule::BoolOrNull},
      {"input_weight_equalization_recommended", Rule::BoolList},
      {"outliers_detected", Rule::BoolList},
      {"outlier_detection_is_sufficient_batches", Rule::BoolList},
      {"sqnr_limited_by", Rule::StringOrNull},
  };
  auto it = rules.find(key);
  return it == rules.end() ? Rule::Any : it->second;
}

class Walk {
 public:
  explicit Walk(const std::string& name) : name_(name) {}

  [[noreturn]] void fail(const JsonPath& at, const std::string& what) const {
    throw InputError(name_ + ": " + at.str() + ": " + what);
  }
  [[noreturn]] void wrong_type(const JsonPath& at, const char* expected, const Value& got) const {
    fail(at, std::string("expected ") + expected + ", got " + json_type_name(got) +
                 (got.type == Type::String ? " " + excerpt(got) : std::string()));
  }
  void expect(const JsonPath& at, const Value& v, Type type, const char* expected) const {
    if (v.type != type) wrong_type(at, expected, v);
  }

  // A value in dB: a finite number (an integer is widened: 40 means 40.0 dB) or null. A string such as
  // "NaN" is refused rather than skipped, so that a gate never passes on a value it could not read.
  void decibels(const JsonPath& at, Value& v) const {
    if (v.type == Type::Int) v = Value::number(static_cast<double>(v.i));
    if (v.type == Type::Float && !std::isfinite(v.f))
      fail(at, std::string("expected a finite number or null, got ") + (std::isnan(v.f) ? "nan" : v.f > 0 ? "inf" : "-inf"));
    if (v.type == Type::String)
      fail(at, "expected a number or null, got the string " + excerpt(v) +
                   " (qreport writes a value it could not measure as null)");
    if (v.type != Type::Float && v.type != Type::Null) wrong_type(at, "a number or null", v);
  }

  void field(const JsonPath& at, const std::string& key, Value& v) const {
    switch (field_rule(key)) {
      case Rule::Any: return;
      case Rule::Decibels: return decibels(at, v);
      case Rule::Bool: return expect(at, v, Type::Bool, "a boolean");
      case Rule::BoolOrNull:
        if (v.type != Type::Bool && v.type != Type::Null) wrong_type(at, "a boolean or null", v);
        return;
      case Rule::StringOrNull:
        if (v.type != Type::String && v.type != Type::Null) wrong_type(at, "a string or null", v);
        return;
      case Rule::BoolList:
        expect(at, v, Type::List, "an array of booleans");
        for (size_t i = 0; i < v.list.size(); ++i) expect(at.element(i), v.list[i], Type::Bool, "a boolean");
        return;
    }
  }

  // One module's fields, checked in place; then the lists that findings() reads side by side.
  void module(const JsonPath& at, Value& fields) const {
    expect(at, fields, Type::Object, "an object (the module's fields)");
    for (auto& [k, v] : fields.members) field(at.member(k), k, v);
    Member* flagged = find(fields, "outliers_detected");
    Member* sufficient = find(fields, "outlier_detection_is_sufficient_batches");
    if (flagged && sufficient && flagged->second.list.size() != sufficient->second.list.size())
      fail(at.member(sufficient->first), std::to_string(sufficient->second.list.size()) +
                                             " entries, but outliers_detected has " +
                                             std::to_string(flagged->second.list.size()));
  }

  detectors::DetectorResult detector(const JsonPath& at, const std::string& det, Value& body,
                                     std::vector<std::pair<std::string, std::string>>& settings) const {
    expect(at, body, Type::Object, "an object (the detector's options, report and modules)");
    detectors::DetectorResult res;
    res.name = det;
    for (auto& [key, v] : body.members) {
      const JsonPath here = at.member(key);
      if (key == "options") {
        expect(here, v, Type::Object, "an object");
        for (auto& [k, x] : v.members) {
          if (ends_with(k, "_db")) decibels(here.member(k), x);
          settings.emplace_back(det + "." + k, json_text(x));
          res.options.emplace_back(k, std::move(x));
        }
      } else if (key == "report") {
        expect(here, v, Type::String, "a string");
        res.text = std::move(v.s);
      } else if (key == "modules") {
        expect(here, v, Type::Object, "an object (module name -> fields)");
        res.modules.reserve(v.members.size());
        for (auto& [fqn, fields] : v.members) {
          module(here.member(fqn), fields);
          res.modules.push_back({fqn, std::move(fields.members)});
        }
      } else {
        res.summary.emplace_back(key, std::move(v));
      }
    }
    return res;
  }

  void simulation(const JsonPath& at, Value& sim, Simulation& out) const {
    expect(at, sim, Type::Object, "an object (configuration -> output SQNRs)");
    out.ran = true;
    for (auto& [config, body] : sim.members) {
      const JsonPath here = at.member(config);
      expect(here, body, Type::Object, "an object");
      SimulatedConfig c;
      c.name = config;
      if (Member* o = find(body, "output_sqnr_db")) {
        decibels(here.member(o->first), o->second);
        if (o->second.type == Type::Float) c.output_sqnr_db = o->second.f;
      }
      if (Member* layers = find(body, "layers_output_sqnr_db")) {
        const JsonPath lp = here.member(layers->first);
        expect(lp, layers->second, Type::Object, "an object (call site -> SQNR)");
        for (auto& [site, v] : layers->second.members) {
          decibels(lp.member(site), v);
          c.layers.emplace_back(site, v.type == Type::Float ? std::optional<double>(v.f) : std::nullopt);
        }
      }
      out.configs.push_back(std::move(c));
    }
  }

 private:
  const std::string& name_;
};

}  // namespace

bool is_sqnr_key(const std::string& key) {
  return ends_with(key, "_db") && key.find("sqnr") != std::string::npos && key.find("gain") == std::string::npos;
}

SavedReport read_saved_report(const std::string& text, const std::string& name) {
  Value root = parse_json_value(text, name);
  const std::string not_report =
      name + " is not a qreport JSON report (no schema_version/detectors); write one with --format json";
  if (root.type != Type::Object) throw InputError(not_report);
  Member* version = find(root, "schema_version");
  Member* dets = find(root, "detectors");
  if (!version || !dets) throw InputError(not_report);

  const Walk walk(name);
  const JsonPath top;
  if (Member* tool = find(root, "tool")) {
    const JsonPath at = top.member(tool->first);
    walk.expect(at, tool->second, Type::Object, "an object");
    if (Member* n = find(tool->second, "name")) {
      walk.expect(at.member(n->first), n->second, Type::String, "a string");
      if (n->second.s != "qreport")
        throw InputError(name + " is not a qreport JSON report (its tool.name is " + excerpt(n->second) + ")");
    }
  }
  if (version->second.type != Type::Int || version->second.i != 1)
    throw InputError(name + " has report schema_version " + excerpt(version->second) + " (this qreport reads 1)");

  SavedReport out;
  out.name = name;
  Report& r = out.report;
  if (Member* model = find(root, "model")) {
    const JsonPath at = top.member(model->first);
    walk.expect(at, model->second, Type::Object, "an object");
    if (Member* p = find(model->second, "path")) {
      walk.expect(at.member(p->first), p->second, Type::String, "a string");
      r.model_path = p->second.s;
    }
    if (Member* h = find(model->second, "sha256")) {
      walk.expect(at.member(h->first), h->second, Type::String, "a string");
      r.model_sha256 = h->second.s;
    }
  }
  if (Member* calib = find(root, "calibration")) {
    const JsonPath at = top.member(calib->first);
    walk.expect(at, calib->second, Type::Object, "an object");
    if (Member* b = find(calib->second, "batches")) {
      if (b->second.type != Type::Int || b->second.i < 0)
        walk.fail(at.member(b->first), "expected a non-negative integer, got " + excerpt(b->second));
      out.settings.emplace_back("calibration.batches", json_text(b->second));
    }
    if (Member* d = find(calib->second, "device")) {
      walk.expect(at.member(d->first), d->second, Type::String, "a string");
      out.settings.emplace_back("calibration.device", json_text(d->second));
    }
  }
  // The sensitivity pass's settings: its figures depend on them (--sensitivity-runs enable-one has no
  // disable-one figures at all), so diff lists a change and does not gate figures a run did not make.
  if (Member* sens = find(root, "sensitivity")) {
    const JsonPath at = top.member(sens->first);
    walk.expect(at, sens->second, Type::Object, "an object");
    for (const char* key : {"scheme", "runs"})
      if (Member* v = find(sens->second, key)) {
        walk.expect(at.member(v->first), v->second, Type::String, "a string");
        out.settings.emplace_back(std::string("sensitivity.") + key, json_text(v->second));
      }
    if (Member* b = find(sens->second, "batches")) {
      if (b->second.type != Type::Int || b->second.i < 0)
        walk.fail(at.member(b->first), "expected a non-negative integer, got " + excerpt(b->second));
      out.settings.emplace_back("sensitivity.batches", json_text(b->second));
    }
  }
  const JsonPath dp = top.member(dets->first);
  walk.expect(dp, dets->second, Type::Object, "an object (detector name -> results)");
  for (auto& [det, body] : dets->second.members)
    r.results.push_back(walk.detector(dp.member(det), det, body, out.settings));
  if (Member* sim = find(root, "simulation")) walk.simulation(top.member(sim->first), sim->second, r.simulation);
  return out;
}

}  // namespace qreport::report
