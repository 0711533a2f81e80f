// select_kth (channel_kernel.h): the exact k-th value of a contiguous buffer, by the radix selection the
// per-channel kernel falls back to.
#include "observers/channel_select.h"

namespace qreport::observers {

float select_kth(const float* values, int64_t n, int64_t k, std::vector<float>& scratch) {
  float mn = kInf, mx = -kInf;
  for (int64_t i = 0; i < n; ++i) {
    mn = std::min(mn, values[i]);
    mx = std::max(mx, values[i]);
  }
  return detail::radix_select(detail::Contiguous{values, n}, k, mn, mx, scratch);
}

}  // namespace qreport::observers
