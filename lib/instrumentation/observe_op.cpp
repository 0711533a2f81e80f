// The observe op: a side-effecting call from the instrumented graph back into qreport. CONSERVATIVE alias
// analysis marks it as having side effects, so dead-code elimination and the executor's passes keep it.
#include <torch/library.h>

#include <atomic>

#include "instrumentation/graph_passes.h"
#include "instrumentation/instrumentation.h"

namespace qreport::instrumentation {
namespace {

std::atomic<const ObserveSink*> current_sink{nullptr};

void observe_kernel(const at::Tensor& x, int64_t id) {
  if (const ObserveSink* s = current_sink.load()) (*s)(id, x);
}

}  // namespace

SinkGuard::SinkGuard(const void* sink) : previous(current_sink.load()) {
  current_sink = static_cast<const ObserveSink*>(sink);
}
SinkGuard::~SinkGuard() { current_sink = static_cast<const ObserveSink*>(previous); }

c10::Symbol observe_symbol() {
  static const c10::Symbol symbol = [] {
    static auto registration = torch::RegisterOperators().op(
        torch::RegisterOperators::options()
            .schema("qreport::observe(Tensor x, int id) -> ()")
            .catchAllKernel<decltype(observe_kernel), &observe_kernel>()
            .aliasAnalysis(c10::AliasAnalysisKind::CONSERVATIVE));
    return c10::Symbol::fromQualString("qreport::observe");
  }();
  return symbol;
}

}  // namespace qreport::instrumentation
