#include <algorithm>
#include <caffe2/serialize/inline_container.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "calibration/calibration.h"
#include "calibration/mapped_records.h"
#include "common/errors.h"
#include "common/pickle.h"

namespace qreport::calibration {
namespace {

// The first bytes tell a zip archive (torch.save since PyTorch 1.6) from the legacy pickle format.
std::string read_magic(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  char buf[4] = {0, 0, 0, 0};
  size_t n = std::fread(buf, 1, 4, f);
  std::fclose(f);
  return std::string(buf, n);
}

// LibTorch sizes a storage from the pickle (numel x element size), not from its record: a corrupt count
// would let tensors read past their record. Every storage must fit in the record it points into.
void check_storages_fit(const c10::IValue& v, const std::unordered_map<const void*, size_t>& record_bytes,
                        const std::string& path) {
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (!t.defined() || !t.has_storage()) return;
    const std::string corrupt = path + " is corrupt: ";  // path: the file's name in messages
    auto it = record_bytes.find(t.storage().data());
    bool fits = it != record_bytes.end() ? t.storage().nbytes() <= it->second : t.storage().nbytes() == 0;
    if (!fits) throw InputError(corrupt + "a tensor's storage is larger than its record");
    // The view must lie inside its storage too (LibTorch's unpickler does not check this either).
    if (t.numel() == 0) return;
    int64_t last = t.storage_offset();
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (t.stride(d) < 0) throw InputError(corrupt + "a tensor has a negative stride");
      last += (t.size(d) - 1) * t.stride(d);
    }
    if (t.storage_offset() < 0 || (last + 1) * static_cast<int64_t>(t.element_size()) >
                                      static_cast<int64_t>(t.storage().nbytes()))
      throw InputError(corrupt + "a tensor's sizes and offset reach past its storage");
    // A broadcast view (torch.expand) repeats its stored values along a stride-0 dimension: a 3 KB file
    // can then hold a batch of gigabytes, which qreport materialises on the way into the model.
    for (int64_t d = 0; d < t.dim(); ++d)
      if (t.stride(d) == 0 && t.size(d) > 1)
        throw InputError(path + " holds a broadcast view (torch.expand: stride 0 along dimension " + std::to_string(d) +
                         ", " + std::to_string(t.numel()) + " values from " +
                         std::to_string(t.storage().nbytes() / std::max<size_t>(t.element_size(), 1)) +
                         " stored); save the batches materialised, with .contiguous()");
  }
  if (v.isTuple())
    for (const auto& e : v.toTupleRef().elements()) check_storages_fit(e, record_bytes, path);
  else if (v.isList())
    for (const auto& e : v.toListRef()) check_storages_fit(e, record_bytes, path);
  else if (v.isGenericDict())
    for (const auto& e : v.toGenericDict()) {
      check_storages_fit(e.key(), record_bytes, path);
      check_storages_fit(e.value(), record_bytes, path);
    }
}

}  // namespace

c10::IValue load_torch_save(const std::string& path, const std::string& what, std::shared_ptr<MappedFile>* mapped_out,
                            size_t* in_place) {
  const std::string name = what + " '" + path + "'";
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw InputError(name + " does not exist");
  if (S_ISDIR(st.st_mode)) throw InputError(name + " is a directory, not a file");
  if (st.st_size == 0) throw InputError(name + " is empty");
  std::string magic = read_magic(path);
  if (magic.empty()) throw InputError(name + " cannot be read");
  if (magic.size() >= 2 && static_cast<unsigned char>(magic[0]) == 0x80)
    throw InputError(name + " is in the legacy (pre-1.6) torch.save format; re-save it with torch.save(obj, path) "
                     "without _use_new_zipfile_serialization=False");
  if (magic.rfind("PK", 0) != 0) throw InputError(name + " is not a torch.save archive (not a zip file)");
  c10::IValue root;
  std::shared_ptr<MappedFile> mapped = mapped_out ? MappedFile::open(path) : nullptr;
  size_t in_place_count = 0, copied = 0;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (reader.hasRecord("constants.pkl") || reader.hasRecord("code/__torch__.py"))
      throw InputError(name + " is not a torch.save archive (it looks like a TorchScript model)");
    if (!reader.hasRecord("data.pkl")) throw InputError(name + " is not a torch.save archive");
    // What torch::jit::readArchiveAndTensors does, with the pickle patched for LibTorch 1.13 first.
    auto [ptr, size] = reader.getRecord("data.pkl");
    std::string pickle(static_cast<const char*>(ptr.get()), size);
    if (int protocol = pickle_protocol(pickle); protocol > 2)
      throw InputError(name + " was saved with pickle protocol " + std::to_string(protocol) +
                       "; LibTorch reads protocol 2: save it with torch.save(obj, path) without pickle_protocol "
                       "(the default is 2)");
    if (std::string problem = pickle_problem(pickle); !problem.empty())
      throw InputError(name + " is corrupt: data.pkl " + problem);
    pickle = patch_for_libtorch(pickle);
    size_t pos = 0;
    auto read = [&](char* buf, size_t len) -> size_t {
      size_t n = std::min(len, pickle.size() - pos);
      std::memcpy(buf, pickle.data() + pos, n);
      pos += n;
      return n;
    };
    // Storages point into the mapped file where the record allows it; otherwise they are read now.
    // Each record's size, by where its bytes are: a storage may not claim more (checked below).
    std::unordered_map<const void*, size_t> record_bytes;
    auto read_record = [&](const std::string& record) {
      if (mapped)
        if (at::DataPtr here = mapped->record(reader, "data/" + record, mapped)) {
          ++in_place_count;
          record_bytes[here.get()] = mapped->record_size("data/" + record);
          return here;
        }
      ++copied;
      auto [data, bytes] = reader.getRecord("data/" + record);
      record_bytes[data.get()] = bytes;
      return std::move(data);
    };
    // Storages saved from a GPU name their device ("cuda:0"); they load onto the CPU, as torch.load's
    // map_location="cpu" does, and move to --device with every other batch.
    torch::jit::Unpickler unpickler(read, nullptr, nullptr, read_record, c10::Device(c10::kCPU));
    unpickler.set_version(reader.version());
    root = unpickler.parse_ivalue();
    check_storages_fit(root, record_bytes, name);
    spdlog::debug("{}: {} storages mapped in place, {} read into memory", name, in_place_count, copied);
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError("cannot read " + name + ": " + first_line(e.what()));
  }
  if (mapped_out) *mapped_out = std::move(mapped);
  if (in_place) *in_place = in_place_count;
  return root;
}

Archive Archive::open(const std::string& path, const Options& options) {
  std::shared_ptr<MappedFile> mapped;
  size_t in_place_count = 0;
  c10::IValue root = load_torch_save(path, "calibration archive", &mapped, &in_place_count);
  Archive archive;
  try {
    archive = from_ivalue(root, options, path);
  } catch (const InputError&) {
    throw;
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {  // a c10::Error from a malformed tensor, never past here
    throw InputError("calibration archive '" + path + "' is not usable: " + first_line(e.what()));
  }
  archive.mapped_ = std::move(mapped);
  archive.in_place_ = in_place_count;
  return archive;
}

void Archive::release(size_t i) const {
  if (!mapped_) return;
  auto drop = [&](const at::Tensor& t) {
    if (t.defined() && t.is_contiguous()) mapped_->release(t.data_ptr(), t.nbytes());
  };
  for (const auto& t : batches_[i].positional) drop(t);
  for (const auto& [name, t] : batches_[i].named) drop(t);
}

}  // namespace qreport::calibration
