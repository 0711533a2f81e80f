// The fake quantizers of each scheme, op for op as torchao 0.18.0 computes them (its quant_primitives.py,
// Int8Tensor, Float8Tensor, the tinygemm int4 qparams), so that the weights agree to the bit and the
// layer outputs to float32 rounding. Every op is an ATen op on the input's device: no host round trip.
#include <cfloat>

#include "common/errors.h"
#include "schemes/schemes.h"

namespace qreport::schemes {
namespace {

at::Tensor rows_of(const at::Tensor& x) { return x.reshape({-1, x.size(-1)}); }

// _quantize_affine_float8 then _dequantize_affine_float8: x / scale (a division, not a reciprocal),
// clamped to +-448 (NaN passes), rounded to e4m3fn, times scale.
at::Tensor fp8_with_scale(const at::Tensor& x, const at::Tensor& scale) {
  const at::Tensor t = at::clamp(x / scale, -448.0, 448.0);
  return round_to_e4m3fn(t) * scale;
}

}  // namespace

at::Tensor int8_rows(const at::Tensor& x) {
  const at::Tensor r = rows_of(x.to(at::kFloat));
  // choose_qparams_affine(SYMMETRIC, int8, eps=finfo(float32).eps): (quant_max - quant_min) / 2 = 127.5.
  const at::Tensor min_neg = at::clamp_max(std::get<0>(at::min(r, 1, true)), 0.0);
  const at::Tensor max_pos = at::clamp_min(std::get<0>(at::max(r, 1, true)), 0.0);
  const at::Tensor scale =
      at::clamp_min(at::maximum(at::neg(min_neg), max_pos) / 127.5, static_cast<double>(FLT_EPSILON));
  // quantize_affine: clamp(round(x * (1.0 / scale)) + zero_point, -128, 127); Python's 1.0 / t is
  // t.reciprocal(). dequantize_affine: (q - zero_point) * scale, zero_point 0.
  const at::Tensor q = at::clamp(at::round(r * at::reciprocal(scale)), -128.0, 127.0);
  return (q * scale).reshape(x.sizes());
}

at::Tensor int4_groups(const at::Tensor& w, int64_t g) {
  const at::Tensor r = w.to(at::kFloat).reshape({-1, g});
  // _choose_qparams_affine_tinygemm(ASYMMETRIC, quant 0..15, eps = smallest normal of float32,
  // scale_dtype = zero_point_dtype = bfloat16): computed in float32, stored in bf16.
  const at::Tensor mn = std::get<0>(at::min(r, 1, true)), mx = std::get<0>(at::max(r, 1, true));
  const at::Tensor scale32 = at::clamp_min((mx - mn) / 15.0, static_cast<double>(FLT_MIN));
  const at::Tensor zero = (mn + scale32 * 8.0).to(at::kBFloat16);
  const at::Tensor scale = scale32.to(at::kBFloat16);
  // _quantize_affine_tinygemm: min_val = zero - scale * mid_point in bf16 arithmetic, then
  // clamp(round((x - min_val) / scale), 0, 15) in float32.
  const at::Tensor min_val = zero - scale * 8.0;
  const at::Tensor q = at::clamp(at::round((r - min_val) / scale), 0.0, 15.0);
  // _dequantize_affine_tinygemm: (q - mid_point) * scale + zero, in float32.
  return ((q - 8.0) * scale + zero).reshape(w.sizes());
}

at::Tensor fp8_tensor(const at::Tensor& x) {
  const at::Tensor xf = x.to(at::kFloat);
  return fp8_with_scale(xf, at::amax(at::abs(xf)) / 448.0);
}

at::Tensor fp8_rows(const at::Tensor& x) {
  const at::Tensor r = rows_of(x.to(at::kFloat));
  return fp8_with_scale(r, at::amax(at::abs(r), {1}, true) / 448.0).reshape(x.sizes());
}

at::Tensor round_to_e4m3fn(const at::Tensor& x) {
  // The quantum of |x|'s binade, 2^(e - 3) for 3 mantissa bits, and 2^-9 below the smallest normal 2^-6,
  // built from the float32 exponent bits (an exact power of two: dividing by it and multiplying back are
  // exact, and round() is to nearest, ties to even, as c10's fp8e4m3fn_from_fp32_value rounds).
  const at::Tensor a = at::abs(x);
  const at::Tensor biased = at::floor_divide(a.view(at::kInt), 1 << 23);  // 0..255 (a is non-negative)
  const at::Tensor quantum = ((at::clamp_min(biased, 127 - 6) - 3) * (1 << 23)).to(at::kInt).view(at::kFloat);
  at::Tensor r = at::round(a / quantum) * quantum;
  // Beyond e4m3fn's largest value, 448, PyTorch 2.12 and later saturate the cast (inf too); 2.11 and
  // older gave NaN there. torchao clamps to +-448 before it casts, so only NaN reaches this from the
  // quantizers, and NaN stays NaN.
  r = at::clamp_max(r, 448.0);
  return at::copysign(r, x);
}

at::Tensor smoothing_factor(const at::Tensor& x_abs_max, const at::Tensor& weight, double alpha) {
  const double eps = static_cast<double>(FLT_EPSILON);  // torch.finfo(torch.float32).eps
  const at::Tensor w_abs_max = std::get<0>(at::max(at::abs(weight.to(at::kFloat)), 0));
  return at::pow(x_abs_max + eps, alpha) / at::pow(w_abs_max + eps, 1.0 - alpha);
}

std::vector<double> smoothquant_alphas() {
  std::vector<double> out;
  for (int k = 0; k <= 10; ++k) out.push_back(k / 10.0);
  return out;
}

at::Tensor quantize_weight(const Scheme& s, const at::Tensor& w) {
  switch (s.kind) {
    case Kind::Int8WeightOnly:
    case Kind::Int8Dynamic:
      return int8_rows(w);
    case Kind::Int4WeightOnly:
      return int4_groups(w, s.group_size);
    case Kind::Fp8Dynamic:
      return fp8_tensor(w);
    case Kind::Fp8DynamicPerRow:
      return fp8_rows(w);
    default:
      throw InternalError("schemes::quantize_weight: " + s.name + " has no weight quantizer of its own");
  }
}

std::optional<at::Tensor> quantize_input(const Scheme& s, const at::Tensor& x) {
  switch (s.kind) {
    case Kind::Int8Dynamic:
      return int8_rows(x);  // per token: a row of the flattened input
    case Kind::Fp8Dynamic:
      return fp8_tensor(x);
    case Kind::Fp8DynamicPerRow:
      return fp8_rows(x);
    default:
      return std::nullopt;
  }
}

}  // namespace qreport::schemes
