// --schemes parsing and which layers each scheme applies to, as torchao 0.18.0 decides it.
#include <algorithm>
#include <string>

#include "common/errors.h"
#include "schemes/schemes.h"

namespace qreport::schemes {
namespace {

const std::vector<std::pair<std::string, Kind>>& fixed_names() {
  static const std::vector<std::pair<std::string, Kind>> names = {
      {"int8-static", Kind::Int8Static},        {"int8-weight-only", Kind::Int8WeightOnly},
      {"int8-dynamic", Kind::Int8Dynamic},      {"fp8-dynamic", Kind::Fp8Dynamic},
      {"fp8-dynamic-per-row", Kind::Fp8DynamicPerRow}, {"smoothquant", Kind::SmoothQuant}};
  return names;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

Scheme parse_one(const std::string& name, const std::string& option) {
  for (const auto& [n, k] : fixed_names())
    if (name == n) return {k, 0, n};
  const std::string int4 = "int4-weight-only";
  if (name == int4) return {Kind::Int4WeightOnly, 128, int4 + "-g128"};
  if (name.rfind(int4 + "-g", 0) == 0) {
    const std::string g = name.substr(int4.size() + 2);
    // torchao's Int4WeightOnlyConfig documents 32, 64, 128 (and 256, which qreport does not offer).
    for (const char* ok : {"32", "64", "128"})
      if (g == ok) return {Kind::Int4WeightOnly, std::stoll(g), name};
    throw UsageError(option + ": bad int4 group size in '" + name + "': G must be 32, 64 or 128");
  }
  throw UsageError(option + ": unknown scheme '" + name + "' (valid: " + valid_names() + ")");
}

}  // namespace

std::string valid_names() {
  return "int8-static, int8-weight-only, int8-dynamic, int4-weight-only-gG (G = 32, 64, 128; default 128), "
         "fp8-dynamic, fp8-dynamic-per-row, smoothquant";
}

std::vector<Scheme> parse(const std::string& list, const std::string& option) {
  std::vector<Scheme> out;
  size_t start = 0;
  while (true) {
    const size_t comma = list.find(',', start);
    const std::string name = trim(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (name.empty()) throw UsageError(option + ": empty scheme name in '" + list + "' (valid: " + valid_names() + ")");
    Scheme s = parse_one(name, option);
    if (std::none_of(out.begin(), out.end(), [&](const Scheme& o) { return o.name == s.name; })) out.push_back(s);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::optional<std::string> not_applicable(const Scheme& s, int conv_dims, const at::Tensor& w) {
  if (s.kind == Kind::Int8Static) return std::nullopt;  // PyTorch's x86 flow quantizes Linear and Conv
  const std::string torchao = std::string("torchao ") + kTorchaoVersion;
  if (conv_dims > 0) {
    // Float8Tensor is the only torchao 0.18.0 weight that implements convolution: conv2d/conv3d, per
    // tensor, and only where both channel counts are multiples of 16. quantize_'s default filter takes
    // Linear only; the other configurations define no Conv quantization.
    if (s.kind != Kind::Fp8Dynamic || conv_dims == 1)
      return torchao + " defines " + s.name + " for Linear layers only" +
             (s.kind == Kind::Fp8Dynamic ? " and Conv2d/Conv3d" : "");
    if (w.size(0) % 16 != 0 || w.size(1) % 16 != 0)
      return torchao + " skips fp8 Conv layers whose channel counts are not multiples of 16";
    return std::nullopt;
  }
  const int64_t in = w.size(-1), out = w.dim() >= 2 ? w.size(-2) : 1;
  if (s.kind == Kind::Int4WeightOnly && in % s.group_size != 0)
    return torchao + " skips int4 layers whose input size is not a multiple of the group size " +
           std::to_string(s.group_size);
  if ((s.kind == Kind::Fp8Dynamic || s.kind == Kind::Fp8DynamicPerRow) && (in % 16 != 0 || out % 16 != 0))
    return torchao + " skips fp8 Linear layers whose input or output size is not a multiple of 16 (_fp8_mm_compat)";
  // Per tensor, the weight's scale block is its whole shape; torchao 0.18.0's matmul tests for 128x128
  // blockwise scaling by the block's size alone, so a 128x128 weight takes that path and asserts a 1x128-scaled
  // input ("input_tensor must be 1x128 scaled") at its first call. quantize_ does not skip it: the plan's
  // filter leaves such layers out (docs/python.md), and they stay in float here too.
  if (s.kind == Kind::Fp8Dynamic && in == 128 && out == 128)
    return torchao + " cannot run fp8-dynamic on a 128x128 Linear (its per-tensor scale block reads as 128x128 "
                     "blockwise scaling and the matmul fails)";
  return std::nullopt;
}

}  // namespace qreport::schemes
