// Quantization parameters as PyTorch's observers compute them, and the quantization error a histogram
// implies for them.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <stdexcept>

#include <ATen/ATen.h>

#include "observers/observers.h"

namespace qreport::observers {
namespace {

// torch.finfo(torch.float32).eps, the observers' default eps.
constexpr float kEps = FLT_EPSILON;

bool uninitialized(float mn, float mx) { return std::isinf(mn) && mn > 0 && std::isinf(mx) && mx < 0; }

}  // namespace

QParams affine_qparams(float min_val, float max_val, int64_t quant_min, int64_t quant_max) {
  QParams q;
  q.quant_min = quant_min;
  q.quant_max = quant_max;
  if (uninitialized(min_val, max_val)) return q;  // PyTorch: scale 1, zero point 0
  const float min_neg = std::min(min_val, 0.0f), max_pos = std::max(max_val, 0.0f);
  float scale = (max_pos - min_neg) / static_cast<float>(quant_max - quant_min);
  scale = std::max(scale, kEps);
  const int64_t zp = quant_min - static_cast<int32_t>(std::nearbyint(min_neg / scale));
  q.scale = scale;
  q.zero_point = std::clamp(zp, quant_min, quant_max);
  return q;
}

QParams symmetric_qparams(float min_val, float max_val, int64_t quant_min, int64_t quant_max) {
  QParams q;
  q.quant_min = quant_min;
  q.quant_max = quant_max;
  if (uninitialized(min_val, max_val)) return q;
  const float min_neg = std::min(min_val, 0.0f), max_pos = std::max(max_val, 0.0f);
  float scale = std::max(-min_neg, max_pos) / static_cast<float>(static_cast<double>(quant_max - quant_min) / 2);
  q.scale = std::max(scale, kEps);
  q.zero_point = 0;  // qint8
  return q;
}

at::Tensor fake_quantize_weight(const at::Tensor& w, bool per_channel) {
  constexpr int64_t qmin = -128, qmax = 127;  // qint8
  if (!per_channel) {
    auto [mn, mx] = at::aminmax(w);
    const QParams q = symmetric_qparams(mn.item<float>(), mx.item<float>(), qmin, qmax);
    return fake_quantize_per_tensor(w, q.scale, q.zero_point, qmin, qmax);
  }
  // PerChannelMinMaxObserver(ch_axis=0): min/max over every other axis (one read in place on the CPU).
  const auto range = channel_min_max(w, 0);
  if (!range) throw std::invalid_argument("fake_quantize_weight: a per-channel weight needs a dimension");
  const auto& [cmin, cmax] = *range;
  std::vector<float> scale(cmin.size());
  for (size_t c = 0; c < scale.size(); ++c) scale[c] = symmetric_qparams(cmin[c], cmax[c], qmin, qmax).scale;
  return fake_quantize_per_row(w, scale, qmin, qmax);
}

double histogram_quantization_error(const HistogramSummary& h, const QParams& q) {
  const int64_t bins = static_cast<int64_t>(h.histogram.size());
  if (bins == 0) return 0.0;
  const double s = q.scale, zp = static_cast<double>(q.zero_point);
  const double inf = std::numeric_limits<double>::infinity();
  // Level k's rounding cell; the lowest and highest levels also take the clipped tails.
  auto cell_lo = [&](int64_t k) { return k == q.quant_min ? -inf : (static_cast<double>(k) - zp - 0.5) * s; };
  auto cell_hi = [&](int64_t k) { return k == q.quant_max ? inf : (static_cast<double>(k) - zp + 0.5) * s; };
  const double width = (static_cast<double>(h.max_val) - static_cast<double>(h.min_val)) / static_cast<double>(bins);
  if (!(width > 0.0)) return 0.0;
  double total = 0.0;
  for (int64_t b = 0; b < bins; ++b) {
    const double n = h.histogram[b];
    if (n == 0.0) continue;
    const double a = h.min_val + width * static_cast<double>(b), c = a + width;
    int64_t k = static_cast<int64_t>(std::floor(a / s + 0.5)) + q.zero_point;
    k = std::clamp(k, q.quant_min, q.quant_max);
    double integral = 0.0;
    for (; k <= q.quant_max && cell_lo(k) < c; ++k) {
      const double lo = std::max(a, cell_lo(k)), hi = std::min(c, cell_hi(k));
      if (hi <= lo) continue;
      const double g = (static_cast<double>(k) - zp) * s;  // the value level k stands for
      integral += ((hi - g) * (hi - g) * (hi - g) - (lo - g) * (lo - g) * (lo - g)) / 3.0;
    }
    total += n / width * integral;
  }
  return total;
}

}  // namespace qreport::observers
