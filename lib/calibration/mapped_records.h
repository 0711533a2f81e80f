// Internal: zero-copy tensor storage for torch.save archives. torch.save stores each storage as an
// uncompressed zip record; mapping the file and pointing each storage at its record means a batch's bytes
// are read from disk only when the batch is used, and can be dropped again right after (release()), so
// memory stays at about one batch however many batches the archive holds.
#pragma once
#include <c10/core/Allocator.h>

#include <memory>
#include <string>
#include <unordered_map>

namespace caffe2::serialize { class PyTorchStreamReader; }

namespace qreport::calibration {

class MappedFile {
 public:
  // nullptr when the file cannot be mapped (the caller then reads records into memory).
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // The record's bytes in place ("data/0"), or an empty DataPtr when the record is not stored
  // uncompressed (a re-zipped archive); the DataPtr keeps the mapping alive.
  at::DataPtr record(caffe2::serialize::PyTorchStreamReader& reader, const std::string& name,
                     const std::shared_ptr<MappedFile>& self) const;
  // Size of an uncompressed record (0 when unknown).
  size_t record_size(const std::string& name) const {
    auto it = stored_.find(name);
    return it == stored_.end() ? 0 : static_cast<size_t>(it->second);
  }
  // Gives the pages of [data, data + bytes) back to the OS; touching them again re-reads the file.
  void release(const void* data, size_t bytes) const;
  bool contains(const void* data) const;

 private:
  MappedFile(void* base, size_t size) : base_(static_cast<unsigned char*>(base)), size_(size) {}
  void index_records();
  unsigned char* base_;
  size_t size_;
  std::unordered_map<std::string, uint64_t> stored_;  // uncompressed records: name -> size
};

}  // namespace qreport::calibration
