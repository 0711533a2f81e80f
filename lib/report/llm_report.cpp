// The outlier detector's "llm_int8" summary (detectors::llm_int8_summary) for people: text and HTML. Read
// from the summary Value, so a saved report read back shows the same lines.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/report.h"
#include "report/svg.h"

namespace qreport::report {
namespace {

using detectors::Value;
using svg::escape;

const Value* member(const Value& v, const char* key) {
  if (v.type != Value::Type::Object) return nullptr;
  for (const auto& [k, x] : v.members)
    if (k == key) return &x;
  return nullptr;
}
double num(const Value* v) {
  if (!v) return NAN;
  return v->type == Value::Type::Int ? double(v->i) : v->type == Value::Type::Float ? v->f : NAN;
}
std::string fmt(const char* f, double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The features of one width group worth showing: most layers hit first, then most tokens; at most n.
std::vector<const Value*> top_features(const Value& group, size_t n) {
  std::vector<const Value*> out;
  if (const Value* fs = member(group, "features"))
    for (const auto& f : fs->list) out.push_back(&f);
  std::stable_sort(out.begin(), out.end(), [](const Value* a, const Value* b) {
    const double ha = num(member(*a, "layers_hit")), hb = num(member(*b, "layers_hit"));
    return ha != hb ? ha > hb : num(member(*a, "token_share")) > num(member(*b, "token_share"));
  });
  if (out.size() > n) out.resize(n);
  return out;
}

// Modules by kurtosis, highest first (null last); at most n.
std::vector<std::pair<std::string, double>> top_kurtosis(const Value& s, size_t n) {
  std::vector<std::pair<std::string, double>> out;
  if (const Value* mods = member(s, "modules"))
    for (const auto& [fqn, f] : mods->members) out.emplace_back(fqn, num(member(f, "kurtosis")));
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::isnan(b.second) ? !std::isnan(a.second) : a.second > b.second;
  });
  if (out.size() > n) out.resize(n);
  return out;
}

std::string feature_line(const Value& f, int64_t layers) {
  return "feature " + std::to_string(int64_t(num(member(f, "feature")))) + ": |x| >= 6 in " +
         std::to_string(int64_t(num(member(f, "layers_hit")))) + "/" + std::to_string(layers) + " layers (" +
         fmt("%.0f", 100 * num(member(f, "layer_fraction"))) + "%), " +
         fmt("%.2f", 100 * num(member(f, "token_share"))) + "% of their tokens, max |x| " +
         fmt("%.4g", num(member(f, "abs_max"))) +
         (member(f, "rule") && member(f, "rule")->b ? "  <- LLM.int8() outlier feature" : "");
}

}  // namespace

const Value* llm_int8_of(const Report& r) {
  for (const auto& res : r.results)
    if (res.name == "outlier_detector")
      for (const auto& [k, v] : res.summary)
        if (k == "llm_int8" && v.type == Value::Type::Object) return &v;
  return nullptr;
}

std::string llm_int8_text(const Value& s) {
  if (const Value* why = member(s, "unavailable")) return "Unavailable: " + why->s + ".\n";
  std::string out = "LLM.int8() rule: |x| >= 6 in at least 25% of the Linear inputs of one width and in at least "
                    "6% of their tokens (docs/usage.md, \"Outliers the LLM way\").\n";
  const Value* rule = member(s, "rule_features");
  std::string holds;
  if (rule)
    for (const auto& f : rule->list)
      holds += (holds.empty() ? "" : ", ") + std::to_string(int64_t(num(member(f, "feature")))) + " (of " +
               std::to_string(int64_t(num(member(f, "input_features")))) + ")";
  out += "The rule holds for feature(s): " + (holds.empty() ? std::string("none") : holds) + "\n";
  if (const Value* groups = member(s, "groups"))
    for (const auto& g : groups->list) {
      const int64_t layers = int64_t(num(member(g, "layers")));
      const auto feats = top_features(g, 8);
      out += "Inputs of width " + std::to_string(int64_t(num(member(g, "input_features")))) + " (" +
             std::to_string(layers) + " Linear layers, " + std::to_string(int64_t(num(member(g, "tokens")))) +
             " tokens): " + (feats.empty() ? "no feature reaches |x| >= 6\n" : "features reaching |x| >= 6, most layers first\n");
      for (const Value* f : feats) out += "  " + feature_line(*f, layers) + "\n";
    }
  const auto k = top_kurtosis(s, 5);
  if (!k.empty()) {
    out += "Highest kurtosis of a Linear input (3 for a normal distribution):";
    for (const auto& [fqn, v] : k) out += "\n  " + fqn + " " + (std::isnan(v) ? std::string("null") : fmt("%.4g", v));
    out += "\n";
  }
  return out;
}

std::string llm_int8_html(const Value& s) {
  const std::string text = llm_int8_text(s);
  if (member(s, "unavailable")) return "<h3>LLM.int8() outlier features</h3><p class=\"none\">" + escape(text) + "</p>";
  std::string out = "<h3>LLM.int8() outlier features</h3><p>" + escape(text.substr(0, text.find('\n'))) +
                    "</p><div class=\"scroll\"><table><thead><tr><th>width</th><th>feature</th><th>layers hit</th>"
                    "<th>tokens |x| ≥ 6</th><th>max |x|</th><th>rule</th></tr></thead><tbody>";
  if (const Value* groups = member(s, "groups"))
    for (const auto& g : groups->list) {
      const std::string w = std::to_string(int64_t(num(member(g, "input_features"))));
      const std::string layers = std::to_string(int64_t(num(member(g, "layers"))));
      for (const Value* f : top_features(g, 8)) {
        const bool rule = member(*f, "rule") && member(*f, "rule")->b;
        out += "<tr><td>" + w + "</td><td>" + std::to_string(int64_t(num(member(*f, "feature")))) + "</td><td>" +
               std::to_string(int64_t(num(member(*f, "layers_hit")))) + "/" + layers + "</td><td>" +
               fmt("%.2f%%", 100 * num(member(*f, "token_share"))) + "</td><td>" + fmt("%.4g", num(member(*f, "abs_max"))) +
               "</td><td" + (rule ? " class=\"yes\">holds" : ">no") + "</td></tr>";
      }
    }
  out += "</tbody></table></div><p>Highest kurtosis of a Linear input:";
  for (const auto& [fqn, v] : top_kurtosis(s, 5))
    out += " <code>" + escape(fqn) + "</code> " + (std::isnan(v) ? std::string("null") : fmt("%.4g", v)) + ";";
  return out + "</p>";
}

}  // namespace qreport::report
