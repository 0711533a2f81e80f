#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <unordered_map>

#include "common/text.h"
#include "report/report.h"

namespace qreport::report {
namespace {

bool is_true(const detectors::Value* v) { return v && v->type == detectors::Value::Type::Bool && v->b; }

// Indices of the true entries of a per-channel bool list, as "0, 3".
std::string true_channels(const detectors::Value* v) {
  std::string out;
  if (!v || v->type != detectors::Value::Type::List) return out;
  for (size_t c = 0; c < v->list.size(); ++c)
    if (is_true(&v->list[c])) out += (out.empty() ? "" : ", ") + std::to_string(c);
  return out;
}

// Measured gains in findings: two decimals, so that a small gain or loss reads as what it is.
std::string db2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", std::fabs(v) < 0.005 ? 0.0 : v);  // never "-0.00"
  return buf;
}

const detectors::Value* number(const detectors::Value* v) {
  return v && v->type == detectors::Value::Type::Float ? v : nullptr;
}

// The quantization-error detector's fields by module, when it ran: built once, so that findings() stays
// linear in the number of modules (a report of 30k modules per detector is read back by diff).
class ErrorFields {
 public:
  explicit ErrorFields(const Report& report) {
    for (const auto& res : report.results)
      if (res.name == "quantization_error_detector")
        for (const auto& m : res.modules) by_fqn_.emplace(m.fqn, &m.fields);  // the first wins, as before
  }
  const detectors::Fields* operator()(const Report&, const std::string& fqn) const {
    auto it = by_fqn_.find(fqn);
    return it == by_fqn_.end() ? nullptr : it->second;
  }

 private:
  std::unordered_map<std::string, const detectors::Fields*> by_fqn_;
};

std::string four_digits(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// The sparse channels of an outlier_detector module (detectors::is_sparse_channel), from its raw values.
std::vector<size_t> sparse_channels(const detectors::Fields& fields) {
  const auto* ratios = detectors::find_field(fields, "outlier_detection_percentile_ratios");
  const auto* used = detectors::find_field(fields, "outlier_detection_batches_used");
  std::vector<size_t> out;
  if (!ratios || !used || ratios->list.size() != used->list.size()) return out;
  for (size_t c = 0; c < ratios->list.size(); ++c)
    if (number(&ratios->list[c]) && used->list[c].type == detectors::Value::Type::Int &&
        detectors::is_sparse_channel(ratios->list[c].f, used->list[c].i))
      out.push_back(c);
  return out;
}

}  // namespace

const std::vector<std::string>& finding_kinds() {
  static const std::vector<std::string> kinds = {"per_channel", "dynamic", "equalization", "outliers", "sqnr"};
  return kinds;
}

// What counts as a finding is what each detector's report string recommends acting on.
std::vector<Finding> findings(const Report& report) {
  std::vector<Finding> out;
  const ErrorFields error_fields(report);
  for (const auto& res : report.results) {
    for (const auto& m : res.modules) {
      if (res.name == "per_channel_detector") {
        if (is_true(detectors::find_field(m.fields, "per_channel_quantization_supported")) &&
            !is_true(detectors::find_field(m.fields, "per_channel_quantization_used")))
        {
          std::string detail = "supports per-channel weight quantization but does not use it";
          const auto* e = error_fields(report, m.fqn);
          const auto* g = e ? number(detectors::find_field(*e, "weight_per_channel_gain_db")) : nullptr;
          // Where the error detector measured the gain, the one decision (the mapping) follows it: a layer
          // whose weights lose SQNR per channel keeps per-tensor weights and is no finding.
          if (g && g->f <= 0.0) continue;
          if (g) detail += "; per-channel weights gain " + db2(g->f) + " dB of weight SQNR";
          out.push_back({"per_channel", m.fqn, detail});
        }
      } else if (res.name == "dynamic_vs_static_detector") {
        if (is_true(detectors::find_field(m.fields, "dynamic_recommended")))
          out.push_back({"dynamic", m.fqn, "dynamic quantization is recommended"});
      } else if (res.name == "input_weight_equalization_detector") {
        // PyTorch's module-level decision (the detector's own text): a share of the channels, not any one.
        const auto* rec = detectors::find_field(m.fields, "input_weight_equalization_recommended");
        const std::string channels = true_channels(rec);
        size_t k = 0, n = rec && rec->type == detectors::Value::Type::List ? rec->list.size() : 0;
        for (size_t c = 0; c < n; ++c) k += is_true(&rec->list[c]);
        if (n > 0 && double(k) / double(n) >= detectors::kEqualizationChannelShare)
          out.push_back({"equalization", m.fqn, "input-weight equalization is recommended for channel(s) " + channels});
      } else if (res.name == "outlier_detector") {
        // A channel flagged from too few usable batches (below --outlier-fraction-batches) is not
        // evidence enough to fail a build on: only flagged channels with sufficient batches count. A
        // sparse channel (reference percentile 0) is flagged by PyTorch but is a note, not an outlier.
        const auto* flagged = detectors::find_field(m.fields, "outliers_detected");
        const auto* sufficient = detectors::find_field(m.fields, "outlier_detection_is_sufficient_batches");
        const auto sparse = sparse_channels(m.fields);
        std::string channels;
        if (flagged && sufficient && flagged->list.size() == sufficient->list.size())
          for (size_t c = 0; c < flagged->list.size(); ++c)
            if (is_true(&flagged->list[c]) && is_true(&sufficient->list[c]) &&
                std::find(sparse.begin(), sparse.end(), c) == sparse.end())
              channels += (channels.empty() ? "" : ", ") + std::to_string(c);
        if (!channels.empty()) {
          std::string detail = "outliers in channel(s) " + channels;
          const auto* e = error_fields(report, m.fqn);
          if (const auto* g = e ? number(detectors::find_field(*e, "input_histogram_gain_db")) : nullptr)
            detail += g->f > 0.0 ? "; clipping to the histogram range recovers " + db2(g->f) + " dB of input SQNR"
                                 : "; clipping to the histogram range loses " + db2(-g->f) + " dB of input SQNR";
          out.push_back({"outliers", m.fqn, detail});
        }
      } else if (res.name == "quantization_error_detector") {
        // A layer whose SQNR under the recommended configuration stays below --min-sqnr.
        const auto* bound = number(detectors::find_field(res.options, "min_sqnr_db"));
        const auto* db = number(detectors::find_field(m.fields, "sqnr_db"));
        const auto* by = detectors::find_field(m.fields, "sqnr_limited_by");
        // NaN/inf made inside the model: no SQNR to judge, and a layer a gate must not pass.
        const auto* nan = detectors::find_field(m.fields, "input_nan_count");
        const auto* inf = detectors::find_field(m.fields, "input_inf_count");
        const int64_t bad = (nan && nan->type == detectors::Value::Type::Int ? nan->i : 0) +
                            (inf && inf->type == detectors::Value::Type::Int ? inf->i : 0);
        if (bound && !db && bad > 0) {
          const auto* first = detectors::find_field(m.fields, "input_non_finite_first_batch");
          std::string what = nan && nan->i > 0 ? (inf && inf->i > 0 ? "NaN and infinite" : "NaN") : "infinite";
          out.push_back({"sqnr", m.fqn,
                         "no SQNR: its input contains " + what + " values made inside the model" +
                             (first && first->type == detectors::Value::Type::Int
                                  ? " (first in calibration batch " + std::to_string(first->i) + ")" : std::string())});
          continue;
        }
        // Any other layer without a figure (its output error not finite, never called in the measured
        // batches, its input never observed): the gate cannot judge it, so it does not pass it. The reason is
        // the detector's (null_reasons; a report read back from JSON does not carry it).
        if (bound && !db) {
          const auto why = res.null_reasons.find(m.fqn);
          out.push_back({"sqnr", m.fqn,
                         "no SQNR: " + (why != res.null_reasons.end() ? why->second : "it could not be measured")});
          continue;
        }
        if (bound && db && db->f < bound->f)
          out.push_back({"sqnr", m.fqn,
                         "SQNR " + format_db(db->f) + " dB under the recommended configuration, below --min-sqnr " +
                             format_db(bound->f) + " dB" +
                             (by && by->type == detectors::Value::Type::String ? " (limited by its " + by->s + ")" : "")});
      }
    }
  }
  return out;
}

// Sparse channels are listed with their max (the only number that means something for them), at most
// kListed per module: a 512-channel layer after a ReLU can have hundreds; the JSON lists them all.
std::vector<Finding> notes(const Report& report) {
  constexpr size_t kListed = 8;
  std::vector<Finding> out;
  for (const auto& res : report.results) {
    if (res.name != "outlier_detector") continue;
    for (const auto& m : res.modules) {
      const auto sparse = sparse_channels(m.fields);
      if (sparse.empty()) continue;
      const auto* max = detectors::find_field(m.fields, "input_activation_per_channel_max");
      std::string detail = std::string(sparse.size() == 1 ? "sparse channel " : "sparse channels ");
      for (size_t i = 0; i < sparse.size() && i < kListed; ++i) {
        const size_t c = sparse[i];
        const auto* mx = max && c < max->list.size() ? number(&max->list[c]) : nullptr;
        detail += (i ? ", " : "") + std::to_string(c) + (mx ? " (max " + four_digits(mx->f) + ")" : "");
      }
      if (sparse.size() > kListed) detail += " and " + std::to_string(sparse.size() - kListed) + " more";
      detail += ": reference percentile 0, so the max / percentile ratio is not an outlier measure (not gated)";
      out.push_back({"sparse", m.fqn, detail});
    }
  }
  return out;
}

std::string per_channel_caveat(const Report& report) {
  // The mapping's entries name the module a qconfig is set on; a child of a fused module takes its parent's.
  auto entry_of = [&](std::string fqn) -> const detectors::QConfigEntry* {
    while (true) {
      for (const auto& e : report.qconfig)
        if (e.fqn == fqn) return &e;
      const size_t dot = fqn.rfind('.');
      if (dot == std::string::npos) return nullptr;
      fqn.resize(dot);
    }
  };
  std::vector<std::string> kept;
  for (const auto& res : report.results) {
    if (res.name != "per_channel_detector") continue;
    for (const auto& m : res.modules) {
      const auto* used = detectors::find_field(m.fields, "per_channel_quantization_used");
      if (!used || used->type != detectors::Value::Type::Bool || used->b) continue;
      const detectors::QConfigEntry* e = entry_of(m.fqn);
      if (e && e->weight == "default_weight_observer") kept.push_back(m.fqn);
    }
  }
  if (kept.empty()) return "";
  std::string list;
  for (size_t i = 0; i < kept.size(); ++i) list += (i ? ", " : "") + kept[i];
  return "qreport: per-channel is possible, not always better: the recommended mapping keeps " + list +
         " per tensor, where per-channel weights measured no SQNR gain (quantization_error_detector).";
}

}  // namespace qreport::report
