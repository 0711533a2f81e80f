// qreport table: ModelReportVisualizer-style tables from a saved JSON report, so a pipeline analyzes once
// and looks many times. Features are the detectors' per-module keys: scalars go to the tensor-level
// table, per-channel lists to the channel-level table (one row per module and channel).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "report/report.h"
#include "report/saved_report.h"

namespace qreport::report {
namespace {

using json = nlohmann::ordered_json;

std::string cell(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    return buf;
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
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
                             const std::string& feature_filter) {
  json j = parse_saved_report(text, "the report");

  // Module -> feature -> value, modules and features in first-seen order.
  std::vector<std::string> modules, scalar_features, channel_features;
  std::map<std::string, std::map<std::string, json>> values;
  for (const auto& [det, body] : j["detectors"].items()) {
    if (!body.contains("modules")) continue;
    for (const auto& [fqn, fields] : body["modules"].items()) {
      if (fqn.find(module_filter) == std::string::npos) continue;
      if (std::find(modules.begin(), modules.end(), fqn) == modules.end()) modules.push_back(fqn);
      for (const auto& [key, v] : fields.items()) {
        if (key.find(feature_filter) == std::string::npos) continue;
        auto& list = v.is_array() ? channel_features : scalar_features;
        if (std::find(list.begin(), list.end(), key) == list.end()) list.push_back(key);
        values[fqn][key] = v;
      }
    }
  }

  std::vector<std::string> head = {"idx", "layer_fqn"};
  head.insert(head.end(), scalar_features.begin(), scalar_features.end());
  std::vector<std::vector<std::string>> rows;
  for (const auto& fqn : modules) {
    std::vector<std::string> row = {std::to_string(rows.size()), fqn};
    bool any = false;
    for (const auto& f : scalar_features) {
      auto it = values[fqn].find(f);
      any |= it != values[fqn].end();
      row.push_back(it == values[fqn].end() ? "" : cell(it->second));
    }
    if (any) rows.push_back(std::move(row));
  }
  std::string out = render("Tensor-level information", head, rows);

  head = {"idx", "layer_fqn", "channel"};
  head.insert(head.end(), channel_features.begin(), channel_features.end());
  rows.clear();
  for (const auto& fqn : modules) {
    size_t channels = 0;
    for (const auto& f : channel_features) {
      auto it = values[fqn].find(f);
      if (it != values[fqn].end()) channels = std::max(channels, it->second.size());
    }
    for (size_t c = 0; c < channels; ++c) {
      std::vector<std::string> row = {std::to_string(rows.size()), fqn, std::to_string(c)};
      for (const auto& f : channel_features) {
        auto it = values[fqn].find(f);
        row.push_back(it == values[fqn].end() || c >= it->second.size() ? "" : cell(it->second[c]));
      }
      rows.push_back(std::move(row));
    }
  }
  out += "\n" + render("Channel-level information", head, rows);
  return out;
}

}  // namespace qreport::report
