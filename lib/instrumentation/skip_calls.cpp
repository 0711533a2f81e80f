// Skippable calls: the sensitivity pass runs the model once per layer with only that layer changed, and
// every Linear/Conv call before it computes what an earlier run of the same batch computed. Each such
// call is wrapped in an If whose test asks the current SkipSink for the output: the call's kernels then
// do not run (the ops between calls still do). The ops are CONSERVATIVE, like observe, so that no pass
// moves or removes them.
#include <torch/library.h>

#include <atomic>

#include "instrumentation/graph_passes.h"
#include "instrumentation/instrumentation.h"

namespace qreport::instrumentation {
namespace {

std::atomic<const SkipSink*> current_skip{nullptr};
// The output the test fetched, handed to skipped_output right after (same thread, adjacent ops).
thread_local at::Tensor stashed;

bool skip_call_kernel(int64_t id) {
  const SkipSink* s = current_skip.load();
  if (!s) return false;
  stashed = (*s)(id);
  return stashed.defined();
}

at::Tensor skipped_output_kernel(int64_t) {
  at::Tensor t = std::move(stashed);
  stashed = at::Tensor();
  return t;
}

c10::Symbol skip_call_symbol() {
  static const c10::Symbol symbol = [] {
    static auto registration = torch::RegisterOperators().op(
        torch::RegisterOperators::options()
            .schema("qreport::skip_call(int id) -> bool")
            .catchAllKernel<decltype(skip_call_kernel), &skip_call_kernel>()
            .aliasAnalysis(c10::AliasAnalysisKind::CONSERVATIVE));
    return c10::Symbol::fromQualString("qreport::skip_call");
  }();
  return symbol;
}

c10::Symbol skipped_output_symbol() {
  static const c10::Symbol symbol = [] {
    static auto registration = torch::RegisterOperators().op(
        torch::RegisterOperators::options()
            .schema("qreport::skipped_output(int id) -> Tensor")
            .catchAllKernel<decltype(skipped_output_kernel), &skipped_output_kernel>()
            .aliasAnalysis(c10::AliasAnalysisKind::CONSERVATIVE));
    return c10::Symbol::fromQualString("qreport::skipped_output");
  }();
  return symbol;
}

}  // namespace

SkipGuard::SkipGuard(const void* sink) : previous(current_skip.load()) {
  current_skip = static_cast<const SkipSink*>(sink);
}
SkipGuard::~SkipGuard() { current_skip = static_cast<const SkipSink*>(previous); }

torch::jit::Value* wrap_skippable(torch::jit::Graph& g, torch::jit::Node* call, torch::jit::Value* output, int64_t id) {
  torch::jit::WithInsertPoint guard(call);
  torch::jit::Value* id_value = g.insertConstant(id);
  torch::jit::Node* test = g.insertNode(g.create(skip_call_symbol(), {id_value}, 1));
  test->output()->setType(c10::BoolType::get());
  torch::jit::Node* branch = g.insertNode(g.create(c10::prim::If, {test->output()}, 0));
  torch::jit::Value* result = branch->addOutput()->setType(output->type());
  torch::jit::Block* skipped = branch->addBlock();
  torch::jit::Block* runs = branch->addBlock();
  output->replaceAllUsesWith(result);
  {
    torch::jit::WithInsertPoint in_skipped(skipped);
    torch::jit::Node* got = g.insertNode(g.create(skipped_output_symbol(), {id_value}, 1));
    got->output()->setType(output->type());
    skipped->registerOutput(got->output());
  }
  call->moveBefore(runs->return_node());
  runs->registerOutput(output);
  return result;
}

}  // namespace qreport::instrumentation
