// The PT2 archive: recognition by content, bounded record reads, and the checked JSON walk.
#include <caffe2/serialize/inline_container.h>
#include <sys/stat.h>
#include <torch/version.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "common/errors.h"
#include "exported/impl.h"

namespace qreport::exported {

bool supported() { return TORCH_VERSION_MAJOR >= 2; }

namespace {

// Deeper than anything torch.export writes (a node's argument sits at depth 9), far below what the
// recursive walks and nlohmann's own destructor could not handle.
constexpr size_t kMaxDepth = 64;

struct TooDeep {};

// For a zip that does not open (truncated: its central directory, at the end, is gone): whether it was meant
// as a PT2 archive, from the file name or the first record's local header at offset 0, which
// torch.export.save writes as "<archive>/data/weights/...", "<archive>/models/..." or
// "<archive>/archive_format". Decides only which reader's error the user sees.
bool meant_as_pt2(const std::string& path) {
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".pt2") == 0) return true;
  std::ifstream f(path, std::ios::binary);
  unsigned char head[30];
  if (!f.read(reinterpret_cast<char*>(head), sizeof head) || head[0] != 'P' || head[1] != 'K' || head[2] != 3 || head[3] != 4)
    return false;
  const size_t len = head[26] | (static_cast<size_t>(head[27]) << 8);
  std::string name(len, '\0');
  if (!f.read(name.data(), static_cast<std::streamsize>(len))) return false;
  const size_t slash = name.find('/');
  const std::string rest = slash == std::string::npos ? name : name.substr(slash + 1);
  return rest == "archive_format" || rest.rfind("data/weights/", 0) == 0 || rest.rfind("models/", 0) == 0;
}

}  // namespace

bool is_pt2_archive(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    // The pre-2.8 layout had one serialized_exported_program.json at the root instead of models/.
    if (reader.hasRecord("serialized_exported_program.json")) return true;
    // archive_format alone decides, so that an archive missing its model JSON is reported as a broken
    // PT2 archive rather than as a file that is not TorchScript.
    if (!reader.hasRecord("archive_format")) return false;
    auto [data, size] = reader.getRecord("archive_format");
    return size <= 16 && std::string(static_cast<const char*>(data.get()), size) == "pt2";
  } catch (const std::exception&) {
    return meant_as_pt2(path);
  }
}

Archive::Archive(const std::string& path) : path_(path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw InputError("model '" + path + "' does not exist");
  file_size_ = static_cast<size_t>(st.st_size);
  try {
    reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception& e) {
    // miniz's text goes on about checkpoints after its first sentence.
    std::string why = first_line(e.what());
    if (const size_t end = why.find(". "); end != std::string::npos) why.resize(end);
    fail("it is not a readable zip archive (truncated or corrupt): " + why);
  }
}

Archive::~Archive() = default;

void Archive::fail(const std::string& what) const {
  throw InputError("model '" + path_ + "' is not a PT2 archive qreport can read: " + what);
}

bool Archive::has(const std::string& name) const {
  try {
    return reader_->hasRecord(name);
  } catch (const std::exception& e) {
    fail(first_line(e.what()));
  }
}

std::vector<std::string> Archive::records() const {
  try {
    return reader_->getAllRecords();
  } catch (const std::exception& e) {
    fail(first_line(e.what()));
  }
}

at::DataPtr Archive::data(const std::string& name, size_t* size) const {
  if (!has(name)) fail("record '" + name + "' is missing");
  try {
#if TORCH_VERSION_MAJOR >= 2
    const size_t declared = reader_->getRecordSize(name);
    if (declared > file_size_)
      fail("record '" + name + "' declares " + std::to_string(declared) + " bytes, more than the file's " +
           std::to_string(file_size_) + ": a compressed record (qreport reads the stored records torch.export.save "
           "writes; save the archive again instead of re-zipping it) or a corrupt one");
#endif
    auto [ptr, n] = reader_->getRecord(name);
    *size = n;
    return std::move(ptr);
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    fail("record '" + name + "' does not read back: " + first_line(e.what()));
  }
}

std::string Archive::text(const std::string& name) const {
  size_t n = 0;
  at::DataPtr p = data(name, &n);
  return std::string(static_cast<const char*>(p.get()), n);
}

nlohmann::json parse_json(const std::string& text, const std::string& name) {
  // The callback sees every value as it opens: nesting beyond kMaxDepth stops the (iterative) parser.
  auto bound = [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (static_cast<size_t>(depth) > kMaxDepth) throw TooDeep{};
    return true;
  };
  try {
    return nlohmann::json::parse(text, bound);
  } catch (const TooDeep&) {
    throw InputError(name + ": JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(name + " is not valid JSON: " + e.what());
  }
}

// ---- Json: every accessor checks the type and names the place ----

void Json::fail(const std::string& what) const { throw InputError(path_ + ": " + what); }

bool Json::has(const char* key) const { return j_->is_object() && j_->contains(key); }

Json Json::operator[](const char* key) const {
  if (!j_->is_object()) fail("expected an object");
  auto it = j_->find(key);
  if (it == j_->end()) fail(std::string("member '") + key + "' is missing");
  return Json(&*it, path_ + "." + key);
}

size_t Json::size() const {
  if (!j_->is_array()) fail("expected an array");
  return j_->size();
}

Json Json::at(size_t i) const {
  if (i >= size()) fail("index " + std::to_string(i) + " out of range");
  return Json(&(*j_)[i], path_ + "[" + std::to_string(i) + "]");
}

std::string Json::str() const {
  if (!j_->is_string()) fail("expected a string");
  return j_->get<std::string>();
}

int64_t Json::int64() const {
  // nlohmann counts unsigned numbers as integers too: one above INT64_MAX must not wrap to a negative.
  if (j_->is_number_unsigned()) {
    if (j_->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) fail("an integer beyond 64-bit range");
    return j_->get<int64_t>();
  }
  if (j_->is_number_integer()) return j_->get<int64_t>();
  fail("expected an integer");
}

double Json::number() const {
  if (j_->is_number()) return j_->get<double>();
  if (j_->is_string()) {
    const std::string s = j_->get<std::string>();
    if (s == "Infinity") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity") return -std::numeric_limits<double>::infinity();
    if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  }
  fail("expected a number");
}

bool Json::boolean() const {
  if (!j_->is_boolean()) fail("expected true or false");
  return j_->get<bool>();
}

std::string Json::union_kind(Json* value) const {
  if (!j_->is_object()) fail("expected an object");
  // The serializer writes a union as an object with exactly one member.
  if (j_->size() != 1) fail("expected exactly one member (a union), found " + std::to_string(j_->size()));
  auto it = j_->begin();
  *value = Json(&it.value(), path_ + "." + it.key());
  return it.key();
}

}  // namespace qreport::exported
