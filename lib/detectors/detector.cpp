#include "detectors/detectors.h"

#include <limits>

namespace qreport::detectors {

const Value* find_field(const Fields& fields, const std::string& key) {
  for (const auto& [k, v] : fields)
    if (k == key) return &v;
  return nullptr;
}

const std::vector<std::string>& all_detector_names() {
  static const std::vector<std::string> names = {"per_channel_detector", "dynamic_vs_static_detector",
                                                 "input_weight_equalization_detector", "outlier_detector",
                                                 "quantization_error_detector"};
  return names;
}

std::optional<std::string> canonical_detector_name(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> aliases = {
      {"per_channel", "per_channel_detector"},
      {"dynamic_static", "dynamic_vs_static_detector"},
      {"dynamic_vs_static", "dynamic_vs_static_detector"},
      {"equalization", "input_weight_equalization_detector"},
      {"input_weight_equalization", "input_weight_equalization_detector"},
      {"outlier", "outlier_detector"},
      {"outliers", "outlier_detector"},
      {"error", "quantization_error_detector"},
      {"quantization_error", "quantization_error_detector"},
      {"sqnr", "quantization_error_detector"},
  };
  for (const auto& n : all_detector_names())
    if (n == name) return n;
  for (const auto& [alias, n] : aliases)
    if (alias == name) return n;
  return std::nullopt;
}

Fields fields(std::initializer_list<FieldInit> items) {
  Fields out;
  out.reserve(items.size());
  for (const FieldInit& f : items) out.emplace_back(f.key, std::move(f.value));
  return out;
}
Value float_list(const std::vector<float>& v) {
  return Value::list_of(v, [](float x) { return Value::number(x); });
}
Value int_list(const std::vector<int32_t>& v) {
  return Value::list_of(v, [](int32_t x) { return Value::integer(x); });
}
Value bool_list(const std::vector<bool>& v) {
  Value x;
  x.type = Value::Type::List;
  x.list.reserve(v.size());
  for (bool b : v) x.list.push_back(Value::boolean(b));
  return x;
}
Value float_or_null(std::optional<float> v) { return v ? Value::number(*v) : Value::null(); }

// Here, beside the other pure helpers, so that the readers of saved reports (findings) link without the detectors.
bool is_sparse_channel(double ratio, int64_t batches_used) {
  // Half of FLT_MAX leaves room for the float32 rounding of the running average over any number of batches.
  return batches_used > 0 && ratio * double(batches_used) >= double(std::numeric_limits<float>::max()) / 2;
}

}  // namespace qreport::detectors
