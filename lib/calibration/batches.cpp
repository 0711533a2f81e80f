// Turns the unpickled archive object into batches of forward arguments.
#include "calibration/calibration.h"

#include <ATen/core/ivalue.h>

#include "common/errors.h"

namespace qreport::calibration {
namespace {

std::string describe(const c10::IValue& v) {
  if (v.isTensor()) return "Tensor";
  return v.tagKind();
}

at::Tensor expect_tensor(const c10::IValue& v, const std::string& where) {
  if (!v.isTensor()) throw InputError(where + " is a " + describe(v) + ", expected a Tensor");
  return v.toTensor();
}

Batch positional_batch(const c10::IValue& item, const std::string& where) {
  Batch b;
  if (item.isTensor()) {
    b.positional.push_back(item.toTensor());
  } else if (item.isTuple() || item.isList()) {
    std::vector<c10::IValue> elems;
    if (item.isTuple()) {
      for (const auto& e : item.toTupleRef().elements()) elems.push_back(e);
    } else {
      for (const auto& e : item.toListRef()) elems.push_back(e);
    }
    if (elems.empty()) throw InputError(where + " is an empty " + describe(item));
    for (size_t i = 0; i < elems.size(); ++i)
      b.positional.push_back(expect_tensor(elems[i], where + " item " + std::to_string(i)));
  } else {
    throw InputError(where + " is a " + describe(item) + ", expected a Tensor or a tuple/list of Tensors");
  }
  return b;
}

}  // namespace

Archive Archive::from_ivalue(const c10::IValue& root, const Options& options, const std::string& path) {
  Archive a;
  const std::string prefix = "calibration archive '" + path + "': ";
  if (options.batch_size && *options.batch_size <= 0) throw UsageError("--batch-size must be at least 1");
  // Taken silently before: a list or dict is already batched, and its batches are used as they are.
  if (options.batch_size && !root.isTensor())
    throw UsageError("--batch-size splits an archive of one Tensor; '" + path + "' holds its batches already (" +
                     (root.isGenericDict() ? "a dict" : root.isList() || root.isTuple() ? "a list" : describe(root)) +
                     "): leave --batch-size out");
  if (root.isTensor()) {
    at::Tensor t = root.toTensor();
    if (t.dim() == 0) throw InputError(prefix + "a 0-d tensor cannot be split into batches");
    int64_t n = t.size(0);
    if (n == 0) throw InputError(prefix + "the tensor has no rows");
    int64_t bs = options.batch_size.value_or(n);
    for (int64_t start = 0; start < n; start += bs) {
      Batch b;
      b.positional.push_back(t.slice(0, start, std::min(n, start + bs)));
      a.batches_.push_back(std::move(b));
    }
    a.layout_ = "tensor split into " + std::to_string(a.batches_.size()) + " batches";
  } else if (root.isList() || root.isTuple()) {
    std::vector<c10::IValue> items;
    if (root.isTuple()) {
      for (const auto& e : root.toTupleRef().elements()) items.push_back(e);
    } else {
      for (const auto& e : root.toListRef()) items.push_back(e);
    }
    if (items.empty()) throw InputError(prefix + "the list of batches is empty");
    for (size_t i = 0; i < items.size(); ++i)
      a.batches_.push_back(positional_batch(items[i], prefix + "batch " + std::to_string(i)));
    a.layout_ = "list of " + std::to_string(a.batches_.size()) + " batches";
  } else if (root.isGenericDict()) {
    auto dict = root.toGenericDict();
    if (dict.size() == 0) throw InputError(prefix + "the dict is empty");
    std::vector<std::pair<std::string, std::vector<at::Tensor>>> columns;
    std::optional<size_t> count;
    for (const auto& entry : dict) {
      if (!entry.key().isString()) throw InputError(prefix + "dict keys must be forward-argument names (strings)");
      std::string name = entry.key().toStringRef();
      std::vector<at::Tensor> col;
      const c10::IValue& v = entry.value();
      if (v.isTensor()) {
        col.push_back(v.toTensor());
      } else if (v.isList() || v.isTuple()) {
        auto b = positional_batch(v, prefix + "value of '" + name + "'");
        col = std::move(b.positional);
      } else {
        throw InputError(prefix + "value of '" + name + "' is a " + describe(v) + ", expected a Tensor or a list of Tensors");
      }
      if (count && *count != col.size())
        throw InputError(prefix + "argument '" + name + "' has " + std::to_string(col.size()) + " batches, others have " +
                         std::to_string(*count));
      count = col.size();
      columns.emplace_back(std::move(name), std::move(col));
    }
    for (size_t i = 0; i < *count; ++i) {
      Batch b;
      for (const auto& [name, col] : columns) b.named.emplace_back(name, col[i]);
      a.batches_.push_back(std::move(b));
    }
    a.layout_ = "dict of " + std::to_string(columns.size()) + " arguments x " + std::to_string(*count) + " batches";
  } else {
    throw InputError(prefix + "top-level object is a " + describe(root) +
                     "; expected a list of batches, a dict of named arguments or a Tensor");
  }
  if (options.max_batches) {
    if (*options.max_batches <= 0) throw UsageError("--max-batches must be at least 1");
    if (a.batches_.size() > static_cast<size_t>(*options.max_batches)) a.batches_.resize(*options.max_batches);
  }
  return a;
}

}  // namespace qreport::calibration
