// Internal to lib/pipeline: the checks each calibration batch passes before the model sees it: forward's
// schema, finite values, and the dtype of the model's parameters.
#pragma once
#include <torch/script.h>

#include <optional>
#include <string>
#include <vector>

#include "calibration/calibration.h"
#include "model/model.h"

namespace qreport::pipeline {

// Forward's arguments for one batch, checked against forward's schema (arity, names, defaults).
std::vector<c10::IValue> normalized_args(const model::Model& model, const calibration::Batch& batch, size_t index);

// NaN or Inf in calibration data is a data error: PyTorch's observers would silently turn it into NaN
// statistics and meaningless advice. On the CPU each batch is checked on the host just before it is used
// (one read of data forward is about to read anyway). On a GPU that check would cost a host pass and a
// sync per batch, so the batch is flagged on the device instead and the flags are read once, after
// calibration, by finish(); no report is written either way.
class FiniteCheck {
 public:
  FiniteCheck(const model::Model& model, size_t batches);
  FiniteCheck(const std::vector<std::string>& argument_names, size_t batches);  // names outlive the check
  void check(const std::vector<c10::IValue>& args, size_t index);
  // Device flags: one transfer after the last batch.
  void finish();

 private:
  [[noreturn]] void fail(size_t index, size_t a, bool nan) const;
  const std::vector<std::string>& names_;
  size_t batches_;
  at::Tensor flags_;
};

// The dtype of the model's floating parameters (the first one found), or nullopt for a model without any.
std::optional<at::ScalarType> parameter_dtype(const model::Model& model);

// Checks every batch's floating tensors against the model's dtype before calibration starts: an input
// error with --no-cast, else one warning; returns whether any batch needs a cast.
bool check_dtypes(const model::Model& model, const std::vector<std::vector<c10::IValue>>& batches,
                  std::optional<at::ScalarType> dtype, bool cast, std::vector<std::string>& warnings);
// The same with forward's argument names given (an exported program's user inputs).
bool check_dtypes(const std::vector<std::string>& names, const std::vector<std::vector<c10::IValue>>& batches,
                  std::optional<at::ScalarType> dtype, bool cast, std::vector<std::string>& warnings);

}  // namespace qreport::pipeline
