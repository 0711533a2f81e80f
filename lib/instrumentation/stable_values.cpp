// Which observed values no later op can change: the observe worker may then read them after the model
// has moved on, without a copy (observe_worker.h).
//
// Why a copy was needed at all: a leaf call observed on its input may write that input in place
// afterwards (nn.ReLU6(inplace=True) on a Conv's output), and the worker reads it later. Most observed
// values are never written again (a Conv's input, a Linear's output), and for them the copy was the
// largest cost qreport added to the model's own thread with small batches.
//
// How: on a copy of the instrumented graph with every call inlined (a leaf module's forward writes what
// it writes), TorchScript's alias analysis answers, for each observe op, whether any node that runs after
// it writes the observed value or anything that may alias it. Conservative where it cannot know: an op
// without a schema (CONSERVATIVE alias analysis, an interface call left uninlined) writes everything it
// is given; an observe op inside a loop body runs again before the rest of the body; a value that may
// alias the graph's inputs (the batch, or the module's parameters) is not claimed.
#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <map>
#include <set>

#include "instrumentation/graph_passes.h"

namespace qreport::instrumentation {
namespace {

// Every node that runs after `n` in one forward: the rest of its block, then the rest of each enclosing
// block. nullopt-equivalent (false) when n is inside a loop body, whose earlier nodes run again.
template <class F>
bool for_each_node_after(torch::jit::Node* n, F&& fn) {
  for (torch::jit::Block* b = n->owningBlock(); b->owningNode(); b = b->owningNode()->owningBlock())
    if (b->owningNode()->kind() == c10::prim::Loop) return false;
  torch::jit::Node* cur = n;
  while (true) {
    for (torch::jit::Node* m = cur->next(); m != cur->owningBlock()->return_node(); m = m->next()) {
      fn(m);
      for (torch::jit::Block* sub : m->blocks()) for_each_node(sub, fn);
    }
    torch::jit::Node* owner = cur->owningBlock()->owningNode();
    if (!owner) return true;
    cur = owner;
  }
}

std::set<int64_t> never_written_after(torch::jit::Graph& instrumented) {
  std::shared_ptr<torch::jit::Graph> g = instrumented.copy();
  torch::jit::Inline(*g);
  const c10::Symbol observe = observe_symbol(), rewrite = rewrite_symbol();
  // Each observe op's value and position; then the ops themselves go (CONSERVATIVE: to alias analysis
  // they would write every value they observe). A rewrite's result is taken as its input, which only
  // widens what counts as written.
  struct Site {
    int64_t id;
    torch::jit::Value* value;
    torch::jit::Node* marker;  // a node left where the observe op was
  };
  std::vector<Site> sites;
  std::vector<torch::jit::Node*> doomed;
  for_each_node(g->block(), [&](torch::jit::Node* n) {
    if (n->kind() == rewrite) {
      n->output()->replaceAllUsesWith(n->input(0));
      doomed.push_back(n);
    } else if (n->kind() == observe) {
      const auto id = torch::jit::toIValue(n->input(1));
      if (!id || !id->isInt()) return;
      sites.push_back({id->toInt(), n->input(0), nullptr});
      doomed.push_back(n);
    }
  });
  // Each observe op is replaced by a constant, which writes nothing and marks its place.
  size_t s = 0;
  for (torch::jit::Node* n : doomed) {
    if (n->kind() == observe) {
      torch::jit::WithInsertPoint guard(n);
      sites[s++].marker = g->insertConstant(int64_t{0})->node();
    }
    n->destroy();
  }
  torch::jit::AliasDb db(g);
  std::map<int64_t, bool> stable;  // an id observed at several calls: stable only if every one is
  for (const Site& site : sites) {
    bool ok = !db.mayContainAlias(at::ArrayRef<torch::jit::Value*>(site.value), g->inputs());
    if (ok) {
      const torch::jit::ValueSet observed{site.value};
      const bool whole = for_each_node_after(site.marker, [&](torch::jit::Node* m) {
        if (ok && db.writesToAlias(m, observed)) ok = false;
      });
      ok = ok && whole;
    }
    auto [it, inserted] = stable.try_emplace(site.id, ok);
    if (!inserted) it->second = it->second && ok;
  }
  std::set<int64_t> out;
  for (const auto& [id, ok] : stable)
    if (ok) out.insert(id);
  return out;
}

}  // namespace

std::set<int64_t> observed_values_never_written_after(torch::jit::Graph& instrumented) {
  try {
    return never_written_after(instrumented);
  } catch (const std::exception&) {
    return {};  // the analysis is an optimisation: where it cannot run, every value is copied
  }
}

}  // namespace qreport::instrumentation
