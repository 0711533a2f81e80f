// Outliers the LLM way (issue 24 item 6): the statistics of LLM.int8() (Dettmers et al., 2022, section
// 4.1) per Linear input feature, and its outlier rule, from the moments the outlier detector's kernel
// read sums (observers::MomentsSummary). How qreport operationalises the rule is in docs/usage.md
// ("Outliers the LLM way"): the paper's "layers" are the observed Linear inputs of one width, its
// "sequence dimensions" the rows (tokens) those inputs had.
#include <algorithm>
#include <cmath>
#include <map>

#include "common/text.h"
#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::detectors {
namespace {

constexpr double kMagnitude = 6.0;  // observers' kOutlierMagnitude

struct Layer {
  std::string fqn;
  const observers::MomentsSummary* m;
  std::vector<float> abs_max;
};

// Pearson's kurtosis (4th central moment / variance^2; 3 for a normal distribution) of all the values of
// one Linear input, from the per-channel raw sums; nullopt for no spread or a non-finite sum.
std::optional<double> kurtosis(const observers::MomentsSummary& m) {
  const double n = double(m.rows) * double(m.s1.size());
  if (!(n > 0)) return std::nullopt;
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  for (size_t c = 0; c < m.s1.size(); ++c) {
    s1 += m.s1[c];
    s2 += m.s2[c];
    s3 += m.s3[c];
    s4 += m.s4[c];
  }
  const double mu = s1 / n, e2 = s2 / n, e3 = s3 / n, e4 = s4 / n;
  const double var = e2 - mu * mu;
  const double m4 = e4 - 4 * mu * e3 + 6 * mu * mu * e2 - 3 * mu * mu * mu * mu;
  if (!(var > 0) || !std::isfinite(m4)) return std::nullopt;
  return m4 / (var * var);
}

Value unavailable_because(const std::string& why) { return Value::object({{"unavailable", Value::string(why)}}); }

Value number_or_null(double v) { return std::isfinite(v) ? Value::number(v) : Value::null(); }

}  // namespace

Value llm_int8_summary(const model::ModelView& model, const StatsLookup& stats, const ChannelAxes& axes) {
  std::vector<Layer> layers;
  bool unavailable = false;
  for (const auto& node : model.tree().nodes()) {
    if (!node.kind.is_linear || node.has_children()) continue;
    const auto* point = stats.find(node.fqn, Side::Input);
    if (!point) continue;
    const int axis = axes.of(node.fqn).input_axis;
    const auto* m = point->moments(axis);
    const auto* mm = point->minmax(axis);
    if (!m) {
      unavailable = true;
      continue;
    }
    if (!m->invalid.empty() || m->rows == 0 || !mm || !mm->invalid.empty() || mm->max.size() != m->s1.size())
      continue;  // the outlier detector warns about the point itself
    Layer l{node.fqn, m, {}};
    for (size_t c = 0; c < mm->max.size(); ++c)
      l.abs_max.push_back(std::max(std::fabs(mm->min[c]), std::fabs(mm->max[c])));  // NaN stays NaN
    layers.push_back(std::move(l));
  }
  // Not a warning: a report from statistics files equals the direct one but for this (docs/statistics.md).
  if (!axes.is_auto()) return unavailable_because("they are computed with --ch-axis auto only");
  if (unavailable)
    return unavailable_because("qreport analyze computes them in a single process: statistics files (qreport "
                               "report, qreport merge, distributed runs) do not hold them");
  Value modules = Value::object({});
  std::map<size_t, std::vector<const Layer*>> by_width;  // the rule compares layers of one input width
  for (const auto& l : layers) {
    const auto& m = *l.m;
    Value share;
    share.type = Value::Type::List;
    for (double a : m.above) share.list.push_back(Value::number(a / double(m.rows)));
    const auto k = kurtosis(m);
    modules.members.emplace_back(l.fqn, Value::object({{"tokens", Value::integer(m.rows)},
                                                       {"abs_max", float_list(l.abs_max)},
                                                       {"share_above_6", share},
                                                       {"kurtosis", k ? number_or_null(*k) : Value::null()}}));
    by_width[m.s1.size()].push_back(&l);
  }
  Value groups, rule;
  groups.type = rule.type = Value::Type::List;
  for (const auto& [width, ls] : by_width) {
    Value features;
    features.type = Value::Type::List;
    double tokens = 0;
    for (const Layer* l : ls) tokens += double(l->m->rows);
    for (size_t c = 0; c < width; ++c) {
      int64_t hit = 0;
      double above = 0;
      float peak = 0;
      for (const Layer* l : ls) {
        hit += l->abs_max[c] >= kMagnitude;
        above += l->m->above[c];
        peak = std::max(peak, l->abs_max[c]);
      }
      if (hit == 0) continue;
      const double layer_fraction = double(hit) / double(ls.size()), token_share = above / tokens;
      const bool holds = layer_fraction >= kLlmMinLayerFraction && token_share >= kLlmMinTokenFraction;
      features.list.push_back(Value::object({{"feature", Value::integer(int64_t(c))},
                                             {"layers_hit", Value::integer(hit)},
                                             {"layer_fraction", Value::number(layer_fraction)},
                                             {"token_share", Value::number(token_share)},
                                             {"abs_max", Value::number(peak)},
                                             {"rule", Value::boolean(holds)}}));
      if (holds)
        rule.list.push_back(Value::object({{"input_features", Value::integer(int64_t(width))},
                                           {"feature", Value::integer(int64_t(c))}}));
    }
    groups.list.push_back(Value::object({{"input_features", Value::integer(int64_t(width))},
                                         {"layers", Value::integer(int64_t(ls.size()))},
                                         {"tokens", Value::integer(int64_t(tokens))},
                                         {"features", features}}));
  }
  return Value::object({{"magnitude", Value::number(kMagnitude)},
                        {"min_layer_fraction", Value::number(kLlmMinLayerFraction)},
                        {"min_token_fraction", Value::number(kLlmMinTokenFraction)},
                        {"rule_features", rule},
                        {"groups", groups},
                        {"modules", modules}});
}

}  // namespace qreport::detectors
