// qreport table: ModelReportVisualizer-style tables from a saved JSON report, so a pipeline analyzes once
// and looks many times. Features are the detectors' per-module keys: scalars go to the tensor-level
// table, per-channel lists to the channel-level table (one row per module and channel).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>
#include <unordered_set>

#include "common/errors.h"
#include "report/report.h"
#include "report/json_value.h"
#include "report/saved_report.h"

namespace qreport::report {
namespace {

using detectors::Value;

std::string cell(const Value& v) {
  switch (v.type) {
    case Value::Type::Null: return "null";
    case Value::Type::Bool: return v.b ? "True" : "False";
    case Value::Type::Int: return std::to_string(v.i);
    case Value::Type::Float: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.6g", v.f);
      return buf;
    }
    case Value::Type::String: return v.s;
    default: return json_text(v);  // nesting is bounded by the reader (kMaxJsonDepth)
  }
}

std::string render(const std::string& title, const std::vector<std::string>& head,
                   const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(head.size());
  for (size_t c = 0; c < head.size(); ++c) width[c] = head[c].size();
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t c = 0; c < r.size(); ++c) {
      s += r[c] + std::string(width[c] - r[c].size(), ' ');
      if (c + 1 < r.size()) s += "  ";
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  std::string out = title + " (" + std::to_string(rows.size()) + " rows)\n";
  if (rows.empty()) return out + "(no rows match)\n";
  out += line(head);
  size_t total = 0;
  for (size_t w : width) total += w + 2;
  out += std::string(total > 2 ? total - 2 : 0, '-') + "\n";
  for (const auto& r : rows) out += line(r);
  return out;
}

}  // namespace

std::string tables_from_json(const std::string& text, const std::string& module_filter,
                             const std::string& feature_filter, const std::string& name) {
  const SavedReport saved = read_saved_report(text, name);

  // Module -> feature -> value, modules and features in first-seen order; the indexes keep this linear
  // in the report's size (a later detector's value for the same feature replaces the earlier one).
  std::vector<std::string> modules, scalar_features, channel_features;
  std::unordered_map<std::string, size_t> module_index;
  std::unordered_set<std::string> seen_scalar, seen_channel;
  std::vector<std::unordered_map<std::string, const Value*>> values;
  for (const auto& res : saved.report.results) {
    for (const auto& m : res.modules) {
      if (m.fqn.find(module_filter) == std::string::npos) continue;
      auto [it, added] = module_index.emplace(m.fqn, modules.size());
      if (added) {
        modules.push_back(m.fqn);
        values.emplace_back();
      }
      auto& row = values[it->second];
      for (const auto& [key, v] : m.fields) {
        if (key.find(feature_filter) == std::string::npos) continue;
        const bool list = v.type == Value::Type::List;
        if ((list ? seen_channel : seen_scalar).insert(key).second) (list ? channel_features : scalar_features).push_back(key);
        row[key] = &v;
      }
    }
  }

  std::vector<std::string> head = {"idx", "layer_fqn"};
  head.insert(head.end(), scalar_features.begin(), scalar_features.end());
  std::vector<std::vector<std::string>> rows;
  for (size_t mi = 0; mi < modules.size(); ++mi) {
    const auto& vals = values[mi];
    std::vector<std::string> row = {std::to_string(rows.size()), modules[mi]};
    bool any = false;
    for (const auto& f : scalar_features) {
      auto it = vals.find(f);
      any |= it != vals.end();
      row.push_back(it == vals.end() ? "" : cell(*it->second));
    }
    if (any) rows.push_back(std::move(row));
  }
  std::string out = render("Tensor-level information", head, rows);

  head = {"idx", "layer_fqn", "channel"};
  head.insert(head.end(), channel_features.begin(), channel_features.end());
  rows.clear();
  for (size_t mi = 0; mi < modules.size(); ++mi) {
    const auto& vals = values[mi];
    // Each channel feature of this module, once: the row loop below indexes them.
    std::vector<const Value*> lists;
    size_t channels = 0;
    for (const auto& f : channel_features) {
      auto it = vals.find(f);
      // A feature that is a list in one module and a scalar in another is left blank where it is not a list.
      const Value* v = it == vals.end() || it->second->type != Value::Type::List ? nullptr : it->second;
      lists.push_back(v);
      if (v) channels = std::max(channels, v->list.size());
    }
    for (size_t c = 0; c < channels; ++c) {
      std::vector<std::string> row = {std::to_string(rows.size()), modules[mi], std::to_string(c)};
      for (const Value* v : lists) row.push_back(!v || c >= v->list.size() ? "" : cell(v->list[c]));
      rows.push_back(std::move(row));
    }
  }
  out += "\n" + render("Channel-level information", head, rows);
  return out;
}

}  // namespace qreport::report
