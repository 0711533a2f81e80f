// Stage 2: calibration data. Reads a `torch.save` archive (zip format) with LibTorch, no Python, and
// yields batches of forward arguments. Accepted layouts (docs/usage.md):
//   * a list/tuple of batches, a batch being a Tensor or a tuple/list of Tensors (positional arguments);
//   * a dict {forward-argument name: Tensor (one batch) or list of Tensors (one per batch)};
//   * a single Tensor, split along dim 0 into batches of --batch-size rows (default: one batch).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace c10 { class IValue; }

namespace qreport::calibration {

class MappedFile;

struct Batch {
  std::vector<at::Tensor> positional;                       // forward arguments after self, in order
  std::vector<std::pair<std::string, at::Tensor>> named;    // keyword arguments (dict archives)
};

// Unpickles a torch.save archive (zip format) with the checks untrusted files get: zip, not a model,
// pickle protocol 2, a pickle that replays cleanly (common/pickle.h), every tensor inside its record.
// `what` names the file in messages ("calibration archive", "statistics file"); every problem is an
// InputError. With `mapped`, storages point into the memory-mapped file where possible.
c10::IValue load_torch_save(const std::string& path, const std::string& what,
                            std::shared_ptr<MappedFile>* mapped = nullptr, size_t* in_place = nullptr);

struct Options {
  std::optional<int64_t> batch_size;   // split a single-Tensor archive into batches of this many rows
  std::optional<int64_t> max_batches;  // use at most this many batches
};

class Archive {
 public:
  // Throws InputError with one readable line for a missing, empty, corrupt, legacy-format or
  // wrongly laid out archive.
  static Archive open(const std::string& path, const Options& options);
  // Builds the batches from an already unpickled object (used by tests and by open()).
  static Archive from_ivalue(const c10::IValue& root, const Options& options, const std::string& path);

  size_t size() const { return batches_.size(); }
  const Batch& batch(size_t i) const { return batches_[i]; }
  // "list of 4 batches", "dict of 2 arguments x 3 batches", "tensor split into 2 batches"
  const std::string& layout() const { return layout_; }
  // Done with batch i: its bytes go back to the OS (they are re-read from the file if used again), so
  // memory holds about one batch at a time. A no-op where the archive could not be mapped.
  void release(size_t i) const;
  // How many tensor storages point into the mapped file (the rest were read into memory).
  size_t storages_in_place() const { return in_place_; }

 private:
  std::vector<Batch> batches_;   // views into the archive's tensors: no copies
  std::shared_ptr<MappedFile> mapped_;
  size_t in_place_ = 0;
  std::string layout_;
};

}  // namespace qreport::calibration
