// The digest of a statistics file: SHA-256 over a canonical encoding of the dict torch.load returns,
// every key but "digest" itself. It is computed from the values, not the archive's bytes, so it does not
// depend on how the pickle or the zip was laid out (LibTorch 1.x and 2.x, or Python's torch.save after a
// deliberate edit), and it covers every key any version adds without a list of keys to keep in step.
// docs/statistics.md states the encoding; tests/stats/qstats.py implements it independently.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "common/errors.h"
#include "common/text.h"
#include "stats/stats.h"

namespace qreport::stats {
namespace {

class Encoder {
 public:
  void tag(char t) { out_.push_back(t); }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void bytes(const std::string& s) {
    u64(s.size());
    out_ += s;
  }

  // Depth is bounded by the layout (root -> points -> point -> minmax -> entry); a deeper tree is not a
  // statistics file, and refusing it keeps a hostile pickle from recursing without bound.
  void value(const c10::IValue& v, int depth, bool root) {
    if (depth > 16) throw InputError("nesting deeper than a statistics file's");
    if (v.isGenericDict()) {
      std::vector<std::pair<std::string, c10::IValue>> items;
      for (const auto& e : v.toGenericDict()) {
        if (!e.key().isString()) throw InputError("a dict with a key that is not a string");
        if (root && e.key().toStringRef() == "digest") continue;
        items.emplace_back(e.key().toStringRef(), e.value());
      }
      std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      tag('D');
      u64(items.size());
      for (const auto& [k, x] : items) {
        bytes(k);
        value(x, depth + 1, false);
      }
    } else if (v.isList()) {
      const auto& l = v.toListRef();
      tag('L');
      u64(l.size());
      for (const auto& x : l) value(x, depth + 1, false);
    } else if (v.isString()) {
      tag('S');
      bytes(v.toStringRef());
    } else if (v.isBool()) {
      tag('B');
      out_.push_back(v.toBool() ? 1 : 0);
    } else if (v.isInt()) {
      tag('I');
      u64(static_cast<uint64_t>(v.toInt()));
    } else if (v.isDouble()) {
      const double d = v.toDouble();
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      tag('F');
      u64(bits);
    } else if (v.isNone()) {
      tag('N');
    } else if (v.isTensor()) {
      tensor(v.toTensor());
    } else {
      throw InputError(std::string("a value of type ") + v.tagKind() + ", which no statistics file holds");
    }
  }

  const std::string& result() const { return out_; }

 private:
  // dtype name, shape, then the elements little-endian in row-major order (this runs on little-endian
  // hosts only, as LibTorch's own archives assume).
  void tensor(const at::Tensor& t_in) {
    const char* name = nullptr;
    switch (t_in.scalar_type()) {
      case at::kFloat: name = "float32"; break;
      case at::kDouble: name = "float64"; break;
      case at::kInt: name = "int32"; break;
      case at::kLong: name = "int64"; break;
      case at::kByte: name = "uint8"; break;
      case at::kBool: name = "bool"; break;
      default: throw InputError(std::string("a tensor of dtype ") + c10::toString(t_in.scalar_type()) +
                                ", which no statistics file holds");
    }
    if (!t_in.device().is_cpu() || t_in.is_sparse()) throw InputError("a tensor that is not a dense CPU tensor");
    at::Tensor t = t_in.contiguous();
    tag('T');
    bytes(name);
    u64(static_cast<uint64_t>(t.dim()));
    for (int64_t d : t.sizes()) u64(static_cast<uint64_t>(d));
    bytes(std::string(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.nbytes())));
  }

  std::string out_;
};

}  // namespace

std::string digest_of(const c10::IValue& root) {
  Encoder e;
  e.value(root, 0, true);
  const std::string& bytes = e.result();
  return "sha256:" + sha256_hex(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), true);
}

}  // namespace qreport::stats
