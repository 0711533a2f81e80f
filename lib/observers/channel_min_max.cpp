// Per-channel min and max of a weight (the equalization detector's weight statistics) in one read, in
// place: ATen's aminmax over dim 1 of the transposed, flattened view walks it with a strided generic
// loop (3-6 ms for one 3072x768 Linear weight on two threads, about 0.1 s for ViT-B/16's weights).
#include <ATen/ATen.h>

#include "observers/channel_kernel.h"
#include "observers/observers.h"

namespace qreport::observers {

std::optional<std::pair<std::vector<float>, std::vector<float>>> channel_min_max(const at::Tensor& t, int ch_axis) {
  if (!t.defined() || ch_axis < 0 || ch_axis >= t.dim()) return std::nullopt;
  if (t.is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() > 0) {
    // [outer, C, inner]: the channel kernel's own view of a contiguous tensor along any axis.
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ch_axis; ++d) outer *= t.size(d);
    for (int64_t d = ch_axis + 1; d < t.dim(); ++d) inner *= t.size(d);
    ChannelBatchStats stats;
    // The last axis (a Linear weight's input features): rows of channels, read row by row.
    if (inner == 1 && outer > 1)
      channel_stats_rows_cpu(t.data_ptr<float>(), outer, t.size(ch_axis), {}, stats);
    else
      channel_stats_cpu(t.data_ptr<float>(), outer, t.size(ch_axis), inner, {}, stats, nullptr);
    return std::make_pair(std::move(stats.min), std::move(stats.max));
  }
  at::Tensor rows = t.transpose(0, ch_axis).flatten(1);
  auto [mn, mx] = rows.aminmax(1);
  mn = mn.to(at::kCPU, at::kFloat).contiguous();
  mx = mx.to(at::kCPU, at::kFloat).contiguous();
  return std::make_pair(std::vector<float>(mn.data_ptr<float>(), mn.data_ptr<float>() + mn.numel()),
                        std::vector<float>(mx.data_ptr<float>(), mx.data_ptr<float>() + mx.numel()));
}

}  // namespace qreport::observers
