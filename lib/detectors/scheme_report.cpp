// Each layer's figures under the --schemes schemes (docs/quantization-error.md, "Schemes"): JSON fields,
// warnings and text. int8-static is the error detector's own measurement under the recommended mapping,
// so its three numbers are that detector's fields under the layer's recommended observers.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "common/text.h"
#include "detectors/scheme_report.h"
#include "schemes/schemes.h"

namespace qreport::detectors {
namespace {

Value db_value(std::optional<double> v) { return v ? Value::number(*v) : Value::null(); }

const Value* member(const Value& v, const std::string& key) {
  for (const auto& [k, m] : v.members)
    if (k == key) return &m;
  return nullptr;
}

std::optional<double> number_in(const Value* v) {
  return v && v->type == Value::Type::Float ? std::optional<double>(v->f) : std::nullopt;
}

// int8-static from the detector's fields: the recommended weight and activation observers' SQNRs, and
// sqnr_db. A dynamic activation has no static input SQNR of its own; min/max stands for it, as in
// sqnr_limited_by.
Value int8_static(const Fields& f) {
  const Value* wo = find_field(f, "recommended_weight_observer");
  const Value* ao = find_field(f, "recommended_activation_observer");
  const bool per_channel = wo && wo->s == "default_per_channel_weight_observer";
  const bool histogram = ao && ao->s == "default_histogram_observer";
  auto get = [&](const char* key) { return number_in(find_field(f, key)); };
  return Value::object(
      {{"weight_sqnr_db", db_value(get(per_channel ? "weight_sqnr_per_channel_db" : "weight_sqnr_per_tensor_db"))},
       {"input_sqnr_db", db_value(get(histogram ? "input_sqnr_histogram_db" : "input_sqnr_minmax_db"))},
       {"output_sqnr_db", db_value(get("sqnr_db"))}});
}

// Groups the layers left null by (scheme, reason): one warning each, with the count and the first names.
class NullLog {
 public:
  void add(const std::string& what, const std::string& why, const std::string& fqn) {
    auto key = std::make_pair(what, why);
    if (!seen_.count(key)) order_.push_back(key);
    seen_[key].push_back(fqn);
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& key : order_) {
      const auto& fqns = seen_.at(key);
      std::string names;
      for (size_t i = 0; i < fqns.size() && i < 3; ++i) names += (i ? ", '" : "'") + fqns[i] + "'";
      if (fqns.size() > 3) names += ", ...";
      out.push_back("quantization_error_detector: " + key.first + " is null for " + std::to_string(fqns.size()) +
                    " layer" + (fqns.size() == 1 ? "" : "s") + " (" + names + "): " + key.second);
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> order_;
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> seen_;
};

Value measured_scheme(const SchemeEnergy& e, const std::string& name, const std::string& fqn, NullLog& log) {
  auto db = [&](const char* key, double s, double n) {
    std::string why;
    const auto v = sqnr_db(s, n, &why);
    if (!v) log.add("schemes." + name + "." + key, std::isnan(n) ? "the error is not finite (NaN)" : why, fqn);
    return db_value(v);
  };
  Fields f = {{"weight_sqnr_db", db("weight_sqnr_db", e.weight_signal, e.weight_noise)},
              {"input_sqnr_db", e.has_input ? db("input_sqnr_db", e.input_signal, e.input_noise) : Value::null()},
              {"output_sqnr_db", db("output_sqnr_db", e.output_signal, e.output_noise)}};
  if (e.alpha) {
    std::string why;
    const auto best = sqnr_db(e.output_signal, e.output_noise, &why);
    const auto ref = sqnr_db(e.output_signal, e.reference_noise, &why);
    f.emplace_back("alpha", Value::number(*e.alpha));
    f.emplace_back("gain_db", best && ref ? Value::number(*best - *ref) : Value::null());
  }
  return Value::object(std::move(f));
}

std::string cell(const Value* v, size_t width) {
  std::string s = !v ? "-" : v->type == Value::Type::Float ? format_db(v->f) : "null";
  return std::string(width > s.size() ? width - s.size() : 0, ' ') + s;
}

}  // namespace

std::vector<std::string> add_scheme_fields(DetectorResult& r, const LayerErrorMeasurement& measured) {
  if (measured.schemes.empty()) return {};
  NullLog log;
  for (auto& m : r.modules) {
    const auto layer = measured.scheme_energy.find(m.fqn);
    Fields schemes;
    for (const auto& name : measured.schemes) {
      if (name == "int8-static") {
        schemes.emplace_back(name, int8_static(m.fields));
        continue;
      }
      const auto e = layer == measured.scheme_energy.end() ? nullptr : [&]() -> const SchemeEnergy* {
        const auto it = layer->second.find(name);
        return it == layer->second.end() ? nullptr : &it->second;
      }();
      if (!e || !e->not_applicable.empty()) {
        // Not measured: the layer's own reason where the error pass gave one (applied with arguments computed
        // at run time, say), else the general one.
        const auto reason = r.null_reasons.find(m.fqn);
        log.add("schemes." + name,
                e ? e->not_applicable
                  : reason != r.null_reasons.end() ? reason->second
                                                   : "its output was not measured (its input was not observed, or it "
                                                     "has no weight)",
                m.fqn);
        schemes.emplace_back(name, Value::null());
        continue;
      }
      schemes.emplace_back(name, measured_scheme(*e, name, m.fqn, log));
    }
    m.fields.emplace_back("schemes", Value::object(std::move(schemes)));
  }
  auto lines = log.lines();
  for (const auto& l : lines) r.warnings.push_back(l);
  return lines;
}

std::string scheme_text(const DetectorResult& r, const LayerErrorMeasurement& measured) {
  if (measured.schemes.empty() || measured.batches == 0) return "";
  size_t width = 6;
  for (const auto& n : measured.schemes) width = std::max(width, n.size());
  std::string out = std::string("Schemes (torchao ") + schemes::kTorchaoVersion +
                    " numerics; SQNR in dB of the weight, the input and the layer's local output; - where the "
                    "scheme leaves the input in float, null where it does not apply or was not measured):\n";
  for (const auto& m : r.modules) {
    const Value* schemes = find_field(m.fields, "schemes");
    if (!schemes) continue;
    out += "  " + m.fqn + "\n    " + std::string("scheme") + std::string(width - 6, ' ') +
           "  weight   input  output\n";
    for (const auto& [name, v] : schemes->members) {
      out += "    " + name + std::string(width - name.size(), ' ');
      if (v.type != Value::Type::Object) {
        out += "  not quantized by torchao here (the warnings say why)\n";
        continue;
      }
      const Value* in = member(v, "input_sqnr_db");
      out += "  " + cell(member(v, "weight_sqnr_db"), 6) + "  " +
             cell(in && in->type == Value::Type::Null && name.find("weight-only") != std::string::npos ? nullptr : in, 6) +
             "  " + cell(member(v, "output_sqnr_db"), 6);
      if (const Value* a = member(v, "alpha")) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "  alpha %.1f", a->f);
        out += buf;
        if (const auto g = number_in(member(v, "gain_db"))) {
          std::snprintf(buf, sizeof buf, ", %+.1f dB over int8-dynamic", *g);
          out += buf;
        }
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace qreport::detectors
