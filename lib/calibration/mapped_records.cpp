#include "calibration/mapped_records.h"

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace qreport::calibration {
namespace {

uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

uint64_t le64(const unsigned char* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    ::close(fd);
    return nullptr;
  }
  // Private and writable: a model that writes into its input gets copy-on-write pages, never the file.
  void* base = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) return nullptr;
  std::shared_ptr<MappedFile> file(new MappedFile(base, static_cast<size_t>(st.st_size)));
  file->index_records();
  return file;
}

MappedFile::~MappedFile() { munmap(base_, size_); }

namespace {
constexpr size_t kRecordAlignment = 64;  // torch.save's alignment of record data
}  // namespace

at::DataPtr MappedFile::record(caffe2::serialize::PyTorchStreamReader& reader, const std::string& name,
                               const std::shared_ptr<MappedFile>& self) const {
  auto it = stored_.find(name);
  if (it == stored_.end()) return {};
  size_t data = reader.getRecordOffset(name);
  if (data > size_ || it->second > size_ - data) return {};
  // torch.save aligns every record to 64 bytes; a zip written by other tools may not, and a tensor at an
  // odd address makes every typed read of it misaligned (UBSan reports it; SIMD kernels assume better).
  // Such a record is read into (aligned) memory instead.
  if ((data % kRecordAlignment) != 0) return {};
  auto* keep = new std::shared_ptr<const MappedFile>(self);
  return at::DataPtr(base_ + data, keep,
                     [](void* ctx) { delete static_cast<std::shared_ptr<const MappedFile>*>(ctx); },
                     c10::Device(c10::kCPU));
}

// Reads the zip central directory (zip64 included) and keeps the records stored uncompressed, by name
// without the archive's top folder. torch.save writes local headers with a data descriptor (sizes 0), so
// the central directory is where the sizes are. Anything unexpected leaves the map empty: records are
// then read into memory as before.
void MappedFile::index_records() {
  const unsigned char* b = base_;
  if (size_ < 22) return;
  size_t eocd = std::string::npos;
  for (size_t back = 22; back <= std::min<size_t>(size_, 22 + 0xFFFF); ++back)
    if (le32(b + size_ - back) == 0x06054b50u) {
      eocd = size_ - back;
      break;
    }
  if (eocd == std::string::npos) return;
  uint64_t entries = le16(b + eocd + 10), cd_size = le32(b + eocd + 12), cd_ofs = le32(b + eocd + 16);
  if ((entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_ofs == 0xFFFFFFFFu) && eocd >= 20 &&
      le32(b + eocd - 20) == 0x07064b50u) {  // zip64 end-of-central-directory locator
    uint64_t z = le64(b + eocd - 20 + 8);
    if (z + 56 > size_ || le32(b + z) != 0x06064b50u) return;
    entries = le64(b + z + 32);
    cd_size = le64(b + z + 40);
    cd_ofs = le64(b + z + 48);
  }
  if (cd_ofs > size_ || cd_size > size_ - cd_ofs) return;
  size_t pos = cd_ofs, end = cd_ofs + cd_size;
  for (uint64_t e = 0; e < entries; ++e) {
    if (pos + 46 > end || le32(b + pos) != 0x02014b50u) return;
    uint16_t method = le16(b + pos + 10), name_len = le16(b + pos + 28), extra_len = le16(b + pos + 30),
             comment_len = le16(b + pos + 32);
    uint64_t usize = le32(b + pos + 24);
    if (pos + 46 + name_len + extra_len > end) return;
    std::string fname(reinterpret_cast<const char*>(b + pos + 46), name_len);
    if (usize == 0xFFFFFFFFu) {  // the real size is in the zip64 extra field (id 1), first
      const unsigned char* x = b + pos + 46 + name_len;
      for (size_t off = 0; off + 4 <= extra_len;) {
        uint16_t id = le16(x + off), len = le16(x + off + 2);
        if (id == 1 && len >= 8) usize = le64(x + off + 4);
        off += 4 + len;
      }
    }
    auto slash = fname.find('/');
    if (method == 0 && slash != std::string::npos) stored_[fname.substr(slash + 1)] = usize;
    pos += 46 + name_len + extra_len + comment_len;
  }
}

void MappedFile::release(const void* data, size_t bytes) const {
  if (!contains(data) || bytes == 0) return;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  auto begin = reinterpret_cast<uintptr_t>(data);
  uintptr_t first = (begin + page - 1) / page * page;  // whole pages inside the range only
  uintptr_t last = (begin + bytes) / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

bool MappedFile::contains(const void* data) const {
  auto p = static_cast<const unsigned char*>(data);
  return p >= base_ && p < base_ + size_;
}

}  // namespace qreport::calibration
