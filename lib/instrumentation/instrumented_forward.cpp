#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/runtime/operator.h>

#include <algorithm>
#include <sstream>

#include "common/errors.h"
#include "instrumentation/graph_passes.h"
#include "instrumentation/instrumentation.h"
#include "model/model.h"

namespace qreport::instrumentation {

const char* side_name(Side side) { return side == Side::Input ? "input" : "output"; }

struct Instrumenter::Impl {
  const model::Model* model;
  std::shared_ptr<torch::jit::Graph> graph;
  std::vector<LeafCall> calls;
  std::vector<std::string> sites;
  bool root_is_leaf = false;
  std::vector<std::string> warnings;
  std::vector<std::string> fast_paths;
  std::unique_ptr<torch::jit::GraphFunction> function;
  // written_attributes of the graph, on the first functional_apply (observe and rewrite ops, added
  // later, write no attribute). One walk instead of one per argument of every functional layer.
  std::optional<std::set<std::string>> written;
};

Instrumenter::Instrumenter(const model::Model& model) : impl_(std::make_unique<Impl>()) {
  impl_->model = &model;
  // A copy: instances of one class share one method graph, and the executor caches plans of the original.
  impl_->graph = model.module().get_method("forward").graph()->copy();
  auto root_cls = impl_->graph->inputs().at(0)->type()->cast<c10::ClassType>();
  impl_->root_is_leaf = root_cls && is_leaf_module_class(root_cls);
  if (!impl_->root_is_leaf) expand_calls(impl_->graph, model.module(), &impl_->warnings);
  auto& g = *impl_->graph;
  auto fused = find_fused_weight_uses(g);
  for (const auto& f : fused) {
    std::string mods;
    for (const auto& m : f.modules) mods += (mods.empty() ? "" : ", ") + m;
    impl_->fast_paths.push_back(f.op + " (" + mods + ")");
  }
  if (!fused.empty() && force_slow_paths(g) == 0) {
    for (const auto& f : impl_->fast_paths)
      impl_->warnings.push_back("the fused op " + f + " computes with module weights outside their calls and no "
                                "grad-mode test selects it; calls through it are not observed");
  }
  impl_->calls = collect_leaf_calls(g, &impl_->warnings);
  if (!impl_->root_is_leaf) {  // a leaf root's own forward applies its own weight: that is its call
    auto functional = collect_functional_calls(g, impl_->calls);
    impl_->calls.insert(impl_->calls.end(), functional.begin(), functional.end());
  }
  for (const auto& c : impl_->calls) impl_->sites.push_back(c.fqn);
  // A model that is itself a leaf (a bare Linear, say): its forward is the one call site, named "".
  if (impl_->root_is_leaf) impl_->sites.insert(impl_->sites.begin(), "");
}

Instrumenter::~Instrumenter() = default;

const std::vector<std::string>& Instrumenter::call_sites() const { return impl_->sites; }

bool Instrumenter::has_call_site(const std::string& fqn) const {
  return std::find(impl_->sites.begin(), impl_->sites.end(), fqn) != impl_->sites.end();
}

std::optional<std::string> Instrumenter::resolve(const std::string& fqn) const {
  std::string f = fqn;
  while (true) {
    if (has_call_site(f)) return f;
    if (f.empty()) return std::nullopt;
    f = model::parent_fqn(f);
  }
}

namespace {

bool is_tensor(const torch::jit::Value* v) { return v->type()->isSubtypeOf(*c10::TensorType::get()); }

void insert_observe(torch::jit::Graph& g, torch::jit::Node* before, torch::jit::Value* value, int64_t id) {
  torch::jit::WithInsertPoint guard(before);
  torch::jit::Value* id_value = g.insertConstant(id);
  g.insertNode(g.create(observe_symbol(), {value, id_value}, /*num_outputs=*/0));
}

}  // namespace

int Instrumenter::observe(const std::string& site_fqn, Side side, int64_t id) {
  auto& g = *impl_->graph;
  int count = 0;
  auto observe_value = [&](torch::jit::Node* before, torch::jit::Value* v, const std::string& what) {
    if (!v || !is_tensor(v)) {
      impl_->warnings.push_back("the " + what + " of '" + site_fqn + "' is " +
                                (v ? v->type()->repr_str() : std::string("missing")) + ", not a Tensor; not observed");
      return;
    }
    insert_observe(g, before, v, id);
    ++count;
  };
  if (site_fqn.empty() && impl_->root_is_leaf) {
    torch::jit::Value* in = g.inputs().size() > 1 ? g.inputs()[1] : nullptr;
    if (side == Side::Input) observe_value(g.inputs().size() > 1 ? g.block()->nodes().front() : nullptr, in, "input");
    else observe_value(g.return_node(), g.outputs().at(0), "output");
    return count;
  }
  for (const auto& call : impl_->calls) {
    if (call.fqn != site_fqn) continue;
    if (side == Side::Input)
      observe_value(call.node, call.input, "input");
    else
      observe_value(call.node->next(), call.output, "output");
  }
  return count;
}

int Instrumenter::rewrite_input(const std::string& site_fqn, int64_t id) {
  auto& g = *impl_->graph;
  int count = 0;
  for (auto& call : impl_->calls) {
    if (call.fqn != site_fqn || !call.input || !is_tensor(call.input)) continue;
    torch::jit::WithInsertPoint guard(call.node);
    torch::jit::Value* id_value = g.insertConstant(id);
    torch::jit::Node* n = g.insertNode(g.create(rewrite_symbol(), {call.input, id_value}, 1));
    n->output()->setType(call.input->type());
    // Only this call takes the rewritten value; other uses of the input (a residual branch) keep it.
    for (size_t i = 0; i < call.node->inputs().size(); ++i)
      if (call.node->input(i) == call.input) call.node->replaceInput(i, n->output());
    ++count;
  }
  return count;
}

int Instrumenter::skippable(const std::string& site_fqn, int64_t id) {
  auto& g = *impl_->graph;
  int count = 0;
  for (auto& call : impl_->calls) {
    if (call.fqn != site_fqn || !call.output || !is_tensor(call.output)) continue;
    torch::jit::Value* result = wrap_skippable(g, call.node, call.output, id);
    // Calls that take this output (the next layer) now take the If's result: rewrite_input() and observe()
    // on them must use it, not the value inside the branch.
    for (auto& other : impl_->calls)
      if (other.input == call.output) other.input = result;
    ++count;
  }
  return count;
}

c10::IValue Instrumenter::run(std::vector<c10::IValue> args, const ObserveSink& sink, const RewriteSink& rewrite,
                              const SkipSink& skip) {
  SkipGuard guard(skip ? &skip : nullptr);
  return run(std::move(args), sink, rewrite);
}

std::string Instrumenter::functional_op(const std::string& fqn) const {
  for (const auto& c : impl_->calls)
    if (c.fqn == fqn) return c.functional;
  return {};
}

std::optional<Instrumenter::LayerApply> Instrumenter::functional_apply(const std::string& fqn) const {
  torch::jit::Value* self = impl_->graph->inputs().at(0);
  const c10::IValue root = impl_->model->module()._ivalue();
  std::optional<std::vector<c10::IValue>> found;
  std::optional<torch::jit::Operation> operation;
  if (!impl_->written) impl_->written = written_attributes(*impl_->graph, self);
  for (const auto& c : impl_->calls) {
    if (c.fqn != fqn || c.functional.empty()) continue;
    std::vector<c10::IValue> mine;
    for (size_t i = 2; i < c.node->inputs().size(); ++i) {
      auto v = constant_or_attribute(c.node->input(i), self, root, *impl_->written);
      if (!v) return std::nullopt;
      mine.push_back(std::move(*v));
    }
    if (found && !same_arguments(*found, mine)) return std::nullopt;
    found = std::move(mine);
    if (!operation && c.node->maybeOperator()) operation = c.node->getOperation();
  }
  if (!found || !operation) return std::nullopt;
  // The node's own overload (conv2d's padding may be a string), run on a stack as the interpreter would.
  return LayerApply([operation = std::move(*operation), args = std::move(*found)](const at::Tensor& x, const at::Tensor& w) mutable {
    torch::jit::Stack stack{x, w};
    stack.insert(stack.end(), args.begin(), args.end());
    operation(stack);
    return stack.back().toTensor();
  });
}

const std::vector<std::string>& Instrumenter::fast_paths() const { return impl_->fast_paths; }

LayoutGuess Instrumenter::input_layout(const std::string& site_fqn) const {
  auto& g = *impl_->graph;
  if (site_fqn.empty() && impl_->root_is_leaf) return {};
  for (const auto& c : impl_->calls)
    if (c.fqn == site_fqn) return infer_layout(c.input, g.inputs().at(0));
  return {};
}

std::set<int64_t> Instrumenter::stable_observed_ids() const { return observed_values_never_written_after(*impl_->graph); }

std::vector<std::pair<int64_t, int64_t>> Instrumenter::observations_of_one_value() const {
  return instrumentation::observations_of_one_value(*impl_->graph);
}

std::string Instrumenter::graph_text() const {
  std::ostringstream os;
  os << *impl_->graph;
  return os.str();
}

const std::vector<std::string>& Instrumenter::warnings() const { return impl_->warnings; }

void Instrumenter::run(std::vector<c10::IValue> args, const ObserveSink& sink) {
  run(std::move(args), sink, RewriteSink());
}

c10::IValue Instrumenter::run(std::vector<c10::IValue> args, const ObserveSink& sink, const RewriteSink& rewrite) {
  if (!impl_->function) {
    impl_->function = std::make_unique<torch::jit::GraphFunction>("qreport.observed_forward", impl_->graph, nullptr);
    // The instrumented forward is one graph with every non-leaf module inlined (thousands of nodes for a
    // ViT). The profiling executor profiles such a graph, then specializes and re-optimizes it at run
    // time, which cost about 0.3 s of calibration on ViT-B/16 and gains nothing on the CPU; the simple
    // executor (profiling off) runs it as written. The mode is read when an executor is created, so only
    // this function's is affected: the modules' own methods, called from it, keep the default.
    auto& profiling = torch::jit::getProfilingMode();
    const bool previous = profiling.exchange(false);
    impl_->function->get_executor();
    profiling = previous;
  }
  torch::jit::Stack stack;
  stack.reserve(args.size() + 1);
  stack.emplace_back(impl_->model->module()._ivalue());
  for (auto& a : args) stack.emplace_back(std::move(a));
  SinkGuard guard(&sink);
  RewriteGuard rewrite_guard(rewrite ? &rewrite : nullptr);
  impl_->function->run(stack);
  return stack.empty() ? c10::IValue() : std::move(stack.back());
}

}  // namespace qreport::instrumentation
