// Weights and constants: data/weights/* and data/constants/*, each described by an entry of the model's
// payload config (dtype, sizes, strides, storage offset). Every entry is checked against its record
// before a tensor views it: the record must hold every element the strides reach.
#include <ATen/ATen.h>
#include <torch/version.h>

#include "common/errors.h"
#include "exported/impl.h"

namespace qreport::exported {

c10::ScalarType scalar_type(const Json& where) {
  // torch/_export/serde/schema.py, ScalarType: the serializer's own numbering, not c10's.
  switch (where.int64()) {
    case 1: return c10::ScalarType::Byte;
    case 2: return c10::ScalarType::Char;
    case 3: return c10::ScalarType::Short;
    case 4: return c10::ScalarType::Int;
    case 5: return c10::ScalarType::Long;
    case 6: return c10::ScalarType::Half;
    case 7: return c10::ScalarType::Float;
    case 8: return c10::ScalarType::Double;
    case 10: return c10::ScalarType::ComplexFloat;
    case 11: return c10::ScalarType::ComplexDouble;
    case 12: return c10::ScalarType::Bool;
    case 13: return c10::ScalarType::BFloat16;
    default: where.fail("dtype " + std::to_string(where.int64()) + " is not one qreport reads");
  }
}

namespace {

int64_t concrete(const Json& sym) {
  Json v(nullptr, "");
  const std::string kind = sym.union_kind(&v);
  if (kind != "as_int") sym.fail("a symbolic size in a stored tensor's metadata");
  return v.int64();
}

// Bytes the view reaches: (offset + sum((size - 1) * stride) + 1) * itemsize, or 0 when empty. Sizes and
// strides come from the file, so every step is checked for overflow.
uint64_t bytes_reached(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides, int64_t offset,
                       size_t itemsize, const Json& where) {
  uint64_t last = static_cast<uint64_t>(offset);
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return 0;
    uint64_t step = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(sizes[d] - 1), static_cast<uint64_t>(strides[d]), &step) ||
        __builtin_add_overflow(last, step, &last))
      where.fail("sizes and strides overflow");
  }
  uint64_t bytes = 0;
  if (__builtin_add_overflow(last, 1, &last) || __builtin_mul_overflow(last, itemsize, &bytes))
    where.fail("sizes and strides overflow");
  return bytes;
}

}  // namespace

std::map<std::string, at::Tensor> read_payloads(const Archive& archive, const std::string& config_record,
                                                const std::string& dir) {
  std::map<std::string, at::Tensor> out;
  if (!archive.has(config_record)) return out;  // a program without weights (or constants) has no config
  const std::string name = "model '" + archive.path() + "': " + config_record;
  const nlohmann::json doc = parse_json(archive.text(config_record), name);
  const Json config = Json(&doc, name + ": $")["config"];
  if (!config.raw().is_object()) config.fail("expected an object");
  std::map<std::string, c10::Storage> storages;  // tied weights share one record
  for (auto it = config.raw().begin(); it != config.raw().end(); ++it) {
    const Json entry(&it.value(), config.path() + "[\"" + it.key() + "\"]");
    if (entry["use_pickle"].boolean())
      entry.fail("a pickled payload (a tensor subclass or custom object), which qreport does not run");
    const std::string file = entry["path_name"].str();
    // A name, not a path: nothing outside this model's folder of the archive.
    if (file.empty() || file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      entry["path_name"].fail("'" + file + "' is not a file name inside " + dir);
    const Json meta = entry["tensor_meta"];
    if (meta.is_null()) entry.fail("no tensor metadata (a custom object), which qreport does not run");
    const c10::ScalarType dtype = scalar_type(meta["dtype"]);
    if (meta.has("layout") && meta["layout"].int64() != 7) meta["layout"].fail("not a strided (dense) tensor");
    std::vector<int64_t> sizes, strides;
    const Json js = meta["sizes"], jt = meta["strides"];
    if (js.size() != jt.size() || js.size() > 16) meta.fail("sizes and strides of different or unusual ranks");
    for (size_t d = 0; d < js.size(); ++d) {
      sizes.push_back(concrete(js.at(d)));
      strides.push_back(concrete(jt.at(d)));
      if (sizes.back() < 0 || strides.back() < 0) meta.fail("a negative size or stride");
    }
    const int64_t offset = meta.has("storage_offset") ? concrete(meta["storage_offset"]) : 0;
    if (offset < 0) meta.fail("a negative storage offset");
    const size_t itemsize = c10::elementSize(dtype);
    const uint64_t needed = bytes_reached(sizes, strides, offset, itemsize, meta);
    auto found = storages.find(file);
    if (found == storages.end()) {
      size_t n = 0;
      at::DataPtr data = archive.data(dir + file, &n);
      found = storages.emplace(file, c10::Storage(c10::Storage::use_byte_size_t(), n, std::move(data), nullptr, false))
                  .first;
    }
    if (needed > found->second.nbytes())
      meta.fail("needs " + std::to_string(needed) + " bytes, record '" + dir + file + "' has " +
                std::to_string(found->second.nbytes()));
    at::Tensor t = at::empty({0}, at::TensorOptions().dtype(dtype));
    t.set_(found->second, offset, sizes, strides);
    // As the eager parameter was: some kernels choose their path by it (scaled_dot_product_attention
    // takes another CPU kernel when a parameter requires grad, and rounds differently).
    if (meta.has("requires_grad") && meta["requires_grad"].boolean() && t.is_floating_point()) t.set_requires_grad(true);
    out.emplace(it.key(), t);
  }
  return out;
}

}  // namespace qreport::exported
