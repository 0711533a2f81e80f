#include <cstdio>
#include <string>

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
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

const detectors::Value* number(const detectors::Value* v) {
  return v && v->type == detectors::Value::Type::Float ? v : nullptr;
}

// The quantization-error detector's fields for fqn, when it ran.
const detectors::Fields* error_fields(const Report& report, const std::string& fqn) {
  for (const auto& res : report.results)
    if (res.name == "quantization_error_detector")
      for (const auto& m : res.modules)
        if (m.fqn == fqn) return &m.fields;
  return nullptr;
}

}  // namespace

const std::vector<std::string>& finding_kinds() {
  static const std::vector<std::string> kinds = {"per_channel", "dynamic", "equalization", "outliers", "sqnr"};
  return kinds;
}

// What counts as a finding is what each detector's report string recommends acting on.
std::vector<Finding> findings(const Report& report) {
  std::vector<Finding> out;
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
        // evidence enough to fail a build on: only flagged channels with sufficient batches count.
        const auto* flagged = detectors::find_field(m.fields, "outliers_detected");
        const auto* sufficient = detectors::find_field(m.fields, "outlier_detection_is_sufficient_batches");
        std::string channels;
        if (flagged && sufficient && flagged->list.size() == sufficient->list.size())
          for (size_t c = 0; c < flagged->list.size(); ++c)
            if (is_true(&flagged->list[c]) && is_true(&sufficient->list[c]))
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

}  // namespace qreport::report
