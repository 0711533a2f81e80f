#include <cmath>

#include "observers/observers.h"

namespace qreport::observers {

int64_t quantile_lower_rank(float q, int64_t m) {
  if (m <= 0) return 0;
  // volatile keeps the product in float32 even where the compiler could use wider registers.
  volatile float product = q * static_cast<float>(m - 1);
  auto rank = static_cast<int64_t>(std::floor(product));
  if (rank < 0) rank = 0;
  if (rank > m - 1) rank = m - 1;
  return rank;
}

std::optional<float> batch_to_epoch_ratio(const RangeSummary& r, std::string* why) {
  auto fail = [&](const std::string& reason) -> std::optional<float> {
    if (why) *why = reason;
    return std::nullopt;
  };
  if (!r.invalid.empty()) return fail(r.invalid);
  if (r.batches == 0) return fail("no data was observed");
  float range = r.epoch_max - r.epoch_min;
  if (std::isnan(range)) return fail("NaN values were observed");
  if (range == 0.0f) return fail("the epoch range is 0 (constant data)");
  if (std::isinf(range)) return fail("infinite values were observed");
  return r.avg_range / range;
}

}  // namespace qreport::observers
