#include <caffe2/serialize/inline_container.h>
#include <sys/stat.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <cstdio>
#include <cstring>

#include "calibration/calibration.h"
#include "calibration/mapped_records.h"
#include "calibration/pickle_patch.h"
#include "common/errors.h"

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

}  // namespace

Archive Archive::open(const std::string& path, const Options& options) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw InputError("calibration archive '" + path + "' does not exist");
  if (S_ISDIR(st.st_mode)) throw InputError("calibration archive '" + path + "' is a directory, not a file");
  if (st.st_size == 0) throw InputError("calibration archive '" + path + "' is empty");
  std::string magic = read_magic(path);
  if (magic.empty()) throw InputError("calibration archive '" + path + "' cannot be read");
  if (magic.size() >= 2 && static_cast<unsigned char>(magic[0]) == 0x80)
    throw InputError("calibration archive '" + path +
                     "' is in the legacy (pre-1.6) torch.save format; re-save it with torch.save(obj, path) "
                     "without _use_new_zipfile_serialization=False");
  if (magic.rfind("PK", 0) != 0)
    throw InputError("calibration archive '" + path + "' is not a torch.save archive (not a zip file)");
  c10::IValue root;
  std::shared_ptr<MappedFile> mapped = MappedFile::open(path);
  size_t in_place_count = 0, copied = 0;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (reader.hasRecord("constants.pkl") || reader.hasRecord("code/__torch__.py"))
      throw InputError("calibration archive '" + path +
                       "' is not a torch.save archive (it looks like a TorchScript model)");
    if (!reader.hasRecord("data.pkl")) throw InputError("calibration archive '" + path + "' is not a torch.save archive");
    // What torch::jit::readArchiveAndTensors does, with the pickle patched for LibTorch 1.13 first.
    auto [ptr, size] = reader.getRecord("data.pkl");
    std::string pickle = patch_append_opcodes(std::string(static_cast<const char*>(ptr.get()), size));
    size_t pos = 0;
    auto read = [&](char* buf, size_t len) -> size_t {
      size_t n = std::min(len, pickle.size() - pos);
      std::memcpy(buf, pickle.data() + pos, n);
      pos += n;
      return n;
    };
    // Storages point into the mapped file where the record allows it; otherwise they are read now.
    auto read_record = [&](const std::string& name) {
      if (mapped)
        if (at::DataPtr in_place = mapped->record(reader, "data/" + name, mapped)) {
          ++in_place_count;
          return in_place;
        }
      ++copied;
      return std::get<0>(reader.getRecord("data/" + name));
    };
    torch::jit::Unpickler unpickler(read, nullptr, nullptr, read_record, c10::nullopt);
    unpickler.set_version(reader.version());
    root = unpickler.parse_ivalue();
    spdlog::debug("archive: {} storages mapped in place, {} read into memory", in_place_count, copied);
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError("cannot read calibration archive '" + path + "': " + first_line(e.what()));
  }
  Archive archive = from_ivalue(root, options, path);
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
