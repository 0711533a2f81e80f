// Host side of the CUDA kernel path: scratch from LibTorch's caching allocator, the current stream, and
// the observers' device state. Compiled only where LibTorch has CUDA and nvcc was found.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "common/errors.h"
#include "observers/channel_kernel_cuda.h"
#include "observers/stat_observers.h"

namespace qreport::observers {

void cuda_channel_stats(const at::Tensor& x, int64_t outer, int64_t channels, int64_t inner, MinMaxObserver* minmax,
                        const std::vector<PercentileObserver*>& percentiles, const std::vector<int64_t>& ranks,
                        MomentsObserver* moments) {
  // The launch goes to the current device, which LibTorch's own guards leave at 0: make it x's, or
  // --device cuda:1 launches on GPU 0 with GPU 1's stream ("invalid resource handle").
  const c10::cuda::CUDAGuard device_guard(x.device());
  const int64_t m = outer * inner;
  const size_t k = cuda::kMaxRanks;
  const size_t groups = std::max<size_t>(1, (percentiles.size() + k - 1) / k);
  for (size_t g = 0; g < groups; ++g) {  // one call per kMaxRanks percentiles (usually exactly one call)
    cuda::ChannelStatsArgs a{};
    a.data = x.data_ptr<float>();
    a.outer = outer;
    a.channels = channels;
    a.inner = inner;
    if (minmax && g == 0) a.first_minmax = minmax->device_state(x, channels, &a.run_min, &a.run_max);
    if (moments && g == 0) a.moments = moments->device_state(x, channels, m);
    for (size_t i = g * k; i < percentiles.size() && i < (g + 1) * k; ++i) {
      auto& s = a.pct[a.nranks];
      percentiles[i]->device_state(x, channels, &s.avg_ratio, &s.batches_used, &s.constant);
      a.ranks[a.nranks++] = ranks[i];
    }
    if (!a.run_min && a.nranks == 0 && !a.moments) return;
    // Scratch from the caching allocator (freeing it here is safe, reuse is ordered on the same stream),
    // and only for channels large enough to need several blocks: its size follows the data, not C.
    at::Tensor scratch;
    if (const size_t bytes = cuda::scratch_bytes(channels, m, a.nranks)) {
      scratch = at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
      a.scratch = scratch.data_ptr();
    }
    auto stream = c10::cuda::getCurrentCUDAStream(x.device().index());
    if (const char* err = cuda::channel_stats_cuda(a, stream.stream()))
      throw InternalError(std::string("CUDA observer kernel failed to launch: ") + err);
  }
}

}  // namespace qreport::observers
