// The quantization schemes people apply with torchao today (--schemes, docs/quantization-error.md), as
// fake quantizers: float32 in, float32 out, the values torchao 0.18.0 would dequantize to. Only ATen ops
// on the tensor's own device, so the scheme pass keeps its work on the GPU and compiles against LibTorch
// 1.13 too (which has no float8 dtype: e4m3fn rounding is emulated, bit for bit). No dependency on any
// other qreport stage but common/.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qreport::schemes {

// The torchao release whose numerics these quantizers reproduce (the test venv pins it; the oracle test
// compares with its functions).
inline constexpr const char* kTorchaoVersion = "0.18.0";

enum class Kind { Int8Static, Int8WeightOnly, Int8Dynamic, Int4WeightOnly, Fp8Dynamic, Fp8DynamicPerRow, SmoothQuant };

struct Scheme {
  Kind kind = Kind::Int8Static;
  int64_t group_size = 0;  // int4-weight-only-gG: G
  std::string name;        // canonical, as the JSON key: "int4-weight-only-g128"
  bool weight_only() const { return kind == Kind::Int8WeightOnly || kind == Kind::Int4WeightOnly; }
};

// --schemes: a comma list of scheme names, in the order given, duplicates dropped ("int4-weight-only" is
// G = 128). An unknown name or group size throws UsageError with one line naming the valid ones.
std::vector<Scheme> parse(const std::string& list, const std::string& option = "--schemes");  // option: named in errors
// Every accepted name, for --help and error messages.
std::string valid_names();

// Why torchao 0.18.0 leaves this layer unquantized under the scheme, or nullopt where it quantizes it.
// conv_dims is 0 for a Linear, else 1, 2 or 3; weight is the layer's float weight.
std::optional<std::string> not_applicable(const Scheme& s, int conv_dims, const at::Tensor& weight);

// Int8Tensor.from_hp with PerRow(): symmetric int8 per row of x.reshape(-1, x.size(-1)) (a weight's output
// rows, an activation's tokens), scale = amax / 127.5 clamped to float32 eps, q = round(x * (1 / scale)).
at::Tensor int8_rows(const at::Tensor& x);
// Int4WeightOnlyConfig(group_size=g) qparams as torchao's tinygemm functions compute them: asymmetric
// groups of g along the last axis, scale = (max - min) / 15 and zero = min + 8 scale, both stored in bf16.
at::Tensor int4_groups(const at::Tensor& w, int64_t g);
// Float8Tensor.from_hp: e4m3fn with scale = amax / 448 (float32, no eps: an all-zero tensor or row gives
// NaN, as in torchao), per tensor or per row of x.reshape(-1, x.size(-1)).
at::Tensor fp8_tensor(const at::Tensor& x);
at::Tensor fp8_rows(const at::Tensor& x);
// x (float32) rounded to the nearest float8_e4m3fn value as torch's .to(torch.float8_e4m3fn) does it:
// to nearest, ties to even, subnormals from 2^-9; beyond 448 (inf too) saturated to 448 as PyTorch 2.12+
// casts; NaN stays NaN.
at::Tensor round_to_e4m3fn(const at::Tensor& x);

// SmoothQuant's smoothing factor per input feature (torchao.prototype.smoothquant):
// s = (x_abs_max + eps)^alpha / (w_abs_max + eps)^(1 - alpha), w_abs_max over the weight's output rows.
at::Tensor smoothing_factor(const at::Tensor& x_abs_max, const at::Tensor& weight, double alpha);
// The alphas SmoothQuant's search tries: 0, 0.1, ..., 1.
std::vector<double> smoothquant_alphas();

// The scheme's quantized weight, and its quantized input (nullopt for weight-only schemes). Not for
// int8-static (the recommended mapping, measured by the error detector) or smoothquant (int8-dynamic on
// the smoothed input and weight).
at::Tensor quantize_weight(const Scheme& s, const at::Tensor& w);
std::optional<at::Tensor> quantize_input(const Scheme& s, const at::Tensor& x);

}  // namespace qreport::schemes
