#include "pipeline/batch_checks.h"

#include <cstdint>
#include <unordered_map>

#include "common/errors.h"
#include "common/text.h"

namespace qreport::pipeline {
namespace {

// One read, no allocation, for the common case (contiguous float32); ATen for the rest.
bool all_finite_cpu(const at::Tensor& t) {
  if (t.scalar_type() != at::kFloat || !t.is_contiguous()) return at::isfinite(t).all().item<bool>();
  const auto* bits = static_cast<const uint32_t*>(t.data_ptr());
  uint32_t bad = 0;
  for (int64_t i = 0, n = t.numel(); i < n; ++i) bad |= (~bits[i] & 0x7f800000u) == 0;  // exponent all ones
  return bad == 0;
}

}  // namespace

// Forward's arguments for one batch, checked against forward's schema (arity, names, defaults).
std::vector<c10::IValue> normalized_args(const model::Model& model, const calibration::Batch& batch, size_t index) {
  const c10::FunctionSchema& schema = model.module().get_method("forward").function().getSchema();
  std::vector<c10::IValue> stack;
  stack.emplace_back(model.module()._ivalue());
  for (const auto& t : batch.positional) stack.emplace_back(t);
  std::unordered_map<std::string, c10::IValue> kwargs;
  for (const auto& [name, t] : batch.named) kwargs.emplace(name, t);
  try {
    schema.checkAndNormalizeInputs(stack, kwargs);
  } catch (const std::exception& e) {
    std::string expected;
    for (const auto& n : model.forward_arg_names()) expected += (expected.empty() ? "" : ", ") + n;
    throw InputError("calibration batch " + std::to_string(index) + " does not fit forward(" + expected +
                     "): " + first_line(e.what()));
  }
  stack.erase(stack.begin());
  return stack;
}

FiniteCheck::FiniteCheck(const model::Model& model, size_t batches)
    : names_(model.forward_arg_names()), batches_(batches) {}

FiniteCheck::FiniteCheck(const std::vector<std::string>& argument_names, size_t batches)
    : names_(argument_names), batches_(batches) {}

void FiniteCheck::check(const std::vector<c10::IValue>& args, size_t index) {
  for (size_t a = 0; a < args.size(); ++a) {
    if (!args[a].isTensor()) continue;
    const at::Tensor& t = args[a].toTensor();
    if (!t.is_floating_point() || t.numel() == 0) continue;
    if (t.is_cpu()) {
      if (all_finite_cpu(t)) continue;
      fail(index, a, at::isnan(t).any().item<bool>());
    }
    if (!flags_.defined())
      flags_ = at::zeros({static_cast<int64_t>(batches_), static_cast<int64_t>(args.size()), 2},
                         t.options().dtype(at::kBool));
    at::Tensor slot = flags_[static_cast<int64_t>(index)][static_cast<int64_t>(a)];
    slot[0].logical_or_(at::isnan(t).any());  // stays on the device: no sync
    slot[1].logical_or_(at::isinf(t).any());
  }
}

void FiniteCheck::finish() {
  if (!flags_.defined()) return;
  at::Tensor f = flags_.cpu();
  auto acc = f.accessor<bool, 3>();
  for (int64_t i = 0; i < f.size(0); ++i)
    for (int64_t a = 0; a < f.size(1); ++a)
      if (acc[i][a][0] || acc[i][a][1]) fail(static_cast<size_t>(i), static_cast<size_t>(a), acc[i][a][0]);
}

void FiniteCheck::fail(size_t index, size_t a, bool nan) const {
  std::string arg = a < names_.size() ? names_[a] : "argument " + std::to_string(a);
  throw InputError("calibration batch " + std::to_string(index) + ", argument '" + arg + "' contains " +
                   (nan ? "NaN" : "infinite") + " values; calibration data must be finite");
}

namespace {

// PyTorch's Python names: what the user wrote when saving the data.
std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    default: return c10::toString(t);
  }
}

}  // namespace

// The dtype of the model's floating parameters (the first one found), or nullopt for a model without any.
std::optional<at::ScalarType> parameter_dtype(const model::Model& model) {
  for (const auto& p : model.module().parameters())
    if (p.is_floating_point()) return p.scalar_type();
  for (const auto& b : model.module().buffers())
    if (b.is_floating_point()) return b.scalar_type();
  return std::nullopt;
}

// Checks every batch's floating tensors against the model's dtype before calibration starts: an input
// error with --no-cast, else one warning; returns whether any batch needs a cast.
bool check_dtypes(const model::Model& model, const std::vector<std::vector<c10::IValue>>& batches,
                  std::optional<at::ScalarType> dtype, bool cast, std::vector<std::string>& warnings) {
  return check_dtypes(model.forward_arg_names(), batches, dtype, cast, warnings);
}

bool check_dtypes(const std::vector<std::string>& names, const std::vector<std::vector<c10::IValue>>& batches,
                  std::optional<at::ScalarType> dtype, bool cast, std::vector<std::string>& warnings) {
  if (!dtype) return false;
  bool any = false;
  for (size_t i = 0; i < batches.size(); ++i) {
    for (size_t a = 0; a < batches[i].size(); ++a) {
      if (!batches[i][a].isTensor()) continue;
      const at::Tensor& t = batches[i][a].toTensor();
      if (!t.is_floating_point() || t.scalar_type() == *dtype) continue;
      const std::string where = "calibration batch " + std::to_string(i) + ", argument '" +
                                (a < names.size() ? names[a] : std::to_string(a)) + "'";
      const std::string have = dtype_name(t.scalar_type()), want = dtype_name(*dtype);
      if (!cast)
        throw InputError(where + " is " + have + " but the model's parameters are " + want +
                         " (without --no-cast qreport casts it)");
      if (!any)
        warnings.push_back(where + ": " + have + " data cast to the model's " + want +
                           " (so is every such tensor; --no-cast makes this an error)");
      any = true;
    }
  }
  return any;
}

}  // namespace qreport::pipeline
