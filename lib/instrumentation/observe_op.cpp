// The observe op: a side-effecting call from the instrumented graph back into qreport. CONSERVATIVE alias
// analysis marks it as having side effects, so dead-code elimination and the executor's passes keep it.
#include <torch/library.h>

#include <atomic>

#include "instrumentation/graph_passes.h"
#include "instrumentation/instrumentation.h"

namespace qreport::instrumentation {
namespace {

std::atomic<const ObserveSink*> current_sink{nullptr};
std::atomic<const RewriteSink*> current_rewrite{nullptr};

void observe_kernel(const at::Tensor& x, int64_t id) {
  if (const ObserveSink* s = current_sink.load()) (*s)(id, x);
}

at::Tensor rewrite_kernel(const at::Tensor& x, int64_t id) {
  if (const RewriteSink* s = current_rewrite.load()) return (*s)(id, x);
  return x;
}

}  // namespace

SinkGuard::SinkGuard(const void* sink) : previous(current_sink.load()) {
  current_sink = static_cast<const ObserveSink*>(sink);
}
SinkGuard::~SinkGuard() { current_sink = static_cast<const ObserveSink*>(previous); }

RewriteGuard::RewriteGuard(const void* sink) : previous(current_rewrite.load()) {
  current_rewrite = static_cast<const RewriteSink*>(sink);
}
RewriteGuard::~RewriteGuard() { current_rewrite = static_cast<const RewriteSink*>(previous); }

c10::Symbol rewrite_symbol() {
  static const c10::Symbol symbol = [] {
    static auto registration = torch::RegisterOperators().op(
        torch::RegisterOperators::options()
            .schema("qreport::rewrite(Tensor x, int id) -> Tensor")
            .catchAllKernel<decltype(rewrite_kernel), &rewrite_kernel>()
            .aliasAnalysis(c10::AliasAnalysisKind::CONSERVATIVE));
    return c10::Symbol::fromQualString("qreport::rewrite");
  }();
  return symbol;
}

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
