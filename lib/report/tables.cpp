// qreport table: ModelReportVisualizer-style tables from a saved JSON report, so a pipeline analyzes once
// and looks many times. Features are the detectors' per-module keys: scalars go to the tensor-level
// table, per-channel lists to the channel-level table (one row per module and channel).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>
#include <string_view>

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

// A table as its header and its cells, row after row (one flat vector: a report of 30k modules has
// hundreds of thousands of channel rows).
struct Table {
  std::vector<std::string> head;
  std::vector<std::string> cells;
  size_t rows() const { return head.empty() ? 0 : cells.size() / head.size(); }
};

// Columns padded to their widest cell, two spaces apart, no trailing blanks; appended to out.
void render(const std::string& title, const Table& t, std::string& out) {
  const size_t cols = t.head.size(), rows = t.rows();
  out += title + " (" + std::to_string(rows) + " rows)\n";
  if (rows == 0) {
    out += "(no rows match)\n";
    return;
  }
  std::vector<size_t> width(cols);
  for (size_t c = 0; c < cols; ++c) width[c] = t.head[c].size();
  for (size_t i = 0; i < t.cells.size(); ++i) width[i % cols] = std::max(width[i % cols], t.cells[i].size());
  size_t total = 0;
  for (size_t w : width) total += w + 2;
  out.reserve(out.size() + (rows + 2) * total);
  auto line = [&](const std::string* r) {
    const size_t start = out.size();
    for (size_t c = 0; c < cols; ++c) {
      out += r[c];
      if (c + 1 < cols) out.append(width[c] - r[c].size() + 2, ' ');
    }
    size_t end = out.size();
    while (end > start && out[end - 1] == ' ') --end;
    out.resize(end);
    out += '\n';
  };
  line(t.head.data());
  out.append(total > 2 ? total - 2 : 0, '-');
  out += '\n';
  for (size_t r = 0; r < rows; ++r) line(&t.cells[r * cols]);
}

}  // namespace

std::string tables_from_json(const std::string& text, const std::string& module_filter,
                             const std::string& feature_filter, const std::string& name) {
  const SavedReport saved = read_saved_report(text, name);

  // Module -> feature -> value, modules and features in first-seen order. Features get dense ids, so each
  // module's values are a vector indexed by feature: one hash lookup per field keeps this linear in the
  // report's size. A later detector's value for the same feature replaces the earlier one.
  std::vector<const std::string*> modules;
  std::unordered_map<std::string_view, size_t> module_index;
  std::vector<std::vector<const Value*>> values;  // [module][feature id]
  std::unordered_map<std::string_view, size_t> feature_id;
  std::vector<std::string> feature_names;
  std::vector<size_t> scalar_features, channel_features;  // ids, in first-seen order
  std::vector<char> seen_scalar, seen_channel;
  for (const auto& res : saved.report.results) {
    for (const auto& m : res.modules) {
      if (m.fqn.find(module_filter) == std::string::npos) continue;
      auto [it, added] = module_index.emplace(m.fqn, modules.size());
      if (added) {
        modules.push_back(&m.fqn);
        values.emplace_back();
      }
      auto& row = values[it->second];
      for (const auto& [key, v] : m.fields) {
        auto f = feature_id.find(key);
        if (f == feature_id.end()) {
          if (key.find(feature_filter) == std::string::npos) continue;
          f = feature_id.emplace(key, feature_names.size()).first;  // key lives in saved, as long as the map
          feature_names.push_back(key);
          seen_scalar.push_back(0);
          seen_channel.push_back(0);
        }
        const size_t id = f->second;
        const bool list = v.type == Value::Type::List;
        char& seen = list ? seen_channel[id] : seen_scalar[id];
        if (!seen) {
          seen = 1;
          (list ? channel_features : scalar_features).push_back(id);
        }
        if (row.size() <= id) row.resize(id + 1, nullptr);
        row[id] = &v;
      }
    }
  }
  auto value = [&](size_t module, size_t id) -> const Value* {
    return id < values[module].size() ? values[module][id] : nullptr;
  };

  Table t;
  t.head = {"idx", "layer_fqn"};
  for (size_t id : scalar_features) t.head.push_back(feature_names[id]);
  size_t rows = 0;
  std::vector<std::string> row;
  for (size_t mi = 0; mi < modules.size(); ++mi) {
    row.clear();
    bool any = false;
    for (size_t id : scalar_features) {
      const Value* v = value(mi, id);
      any |= v != nullptr;
      row.push_back(v ? cell(*v) : "");
    }
    if (!any) continue;
    t.cells.push_back(std::to_string(rows++));
    t.cells.push_back(*modules[mi]);
    for (auto& c : row) t.cells.push_back(std::move(c));
  }
  std::string out;
  render("Tensor-level information", t, out);

  t.head = {"idx", "layer_fqn", "channel"};
  for (size_t id : channel_features) t.head.push_back(feature_names[id]);
  t.cells.clear();
  rows = 0;
  std::vector<const Value*> lists;
  for (size_t mi = 0; mi < modules.size(); ++mi) {
    // A feature that is a list in one module and a scalar in another is left blank where it is not a list.
    lists.clear();
    size_t channels = 0;
    for (size_t id : channel_features) {
      const Value* v = value(mi, id);
      if (v && v->type != Value::Type::List) v = nullptr;
      lists.push_back(v);
      if (v) channels = std::max(channels, v->list.size());
    }
    for (size_t c = 0; c < channels; ++c) {
      t.cells.push_back(std::to_string(rows++));
      t.cells.push_back(*modules[mi]);
      t.cells.push_back(std::to_string(c));
      for (const Value* v : lists) t.cells.push_back(!v || c >= v->list.size() ? std::string() : cell(v->list[c]));
    }
  }
  out += "\n";
  render("Channel-level information", t, out);
  return out;
}

}  // namespace qreport::report
