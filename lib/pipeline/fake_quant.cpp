#include "pipeline/fake_quant.h"

#include <ATen/Functions.h>

#include <limits>

namespace qreport::pipeline {

using detectors::Value;

std::optional<observers::QParams> reported_input_qparams(const detectors::Fields& f, const std::string& kind,
                                                         int64_t qmax) {
  const Value* s = detectors::find_field(f, "input_" + kind + "_scale");
  const Value* z = detectors::find_field(f, "input_" + kind + "_zero_point");
  if (!s || s->type != Value::Type::Float || !z || z->type != Value::Type::Int) return std::nullopt;
  observers::QParams q;
  q.scale = static_cast<float>(s->f);
  q.zero_point = z->i;
  q.quant_min = 0;
  q.quant_max = qmax;
  return q;
}

at::Tensor fake_quantize_dynamic(const at::Tensor& x, int64_t qmax) {
  auto [mn, mx] = at::aminmax(x);
  const at::Tensor min_neg = at::clamp_max(mn, 0.0), max_pos = at::clamp_min(mx, 0.0);
  at::Tensor scale = at::clamp_min((max_pos - min_neg) / static_cast<double>(qmax),
                                   static_cast<double>(std::numeric_limits<float>::epsilon()));
  at::Tensor zp = at::clamp(at::neg(at::round(min_neg / scale)), 0, qmax).to(at::kInt);
  // On the CPU the qparams are host values already (no sync): qreport's kernel, which equals ATen's.
  if (x.is_cpu()) return observers::fake_quantize_per_tensor(x, scale.item<float>(), zp.item<int32_t>(), 0, qmax);
  return at::fake_quantize_per_tensor_affine(x, scale.reshape({1}), zp.reshape({1}), 0, qmax);
}

void flatten_floating(const c10::IValue& v, std::vector<at::Tensor>& out) {
  if (v.isTensor()) {
    if (v.toTensor().is_floating_point()) out.push_back(v.toTensor());
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) flatten_floating(e, out);
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) flatten_floating(e, out);
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) flatten_floating(kv.value(), out);
  }
}

}  // namespace qreport::pipeline
