// torch.jit.fork. A forked call lives in the fork node's subgraph, which runs as a task on the inter-op
// pool: the inliner does not see into it (so `a` looked "never called"), and observers there would run
// on other threads in no fixed order. Here the subgraph's work moves into the graph at the fork, so it
// runs in program order on the calling thread, and the fork is kept, with a subgraph that only returns
// the value already computed: futures, lists of futures and waits keep their types and meaning.
#include "instrumentation/graph_passes.h"

namespace qreport::instrumentation {
namespace {

void collect_forks(torch::jit::Block* block, std::vector<torch::jit::Node*>& out) {
  for (torch::jit::Node* n : block->nodes()) {
    for (torch::jit::Block* b : n->blocks()) collect_forks(b, out);
    // A subgraph with no nodes only returns its input: already done (one of ours).
    if (n->kind() == c10::prim::fork && n->g(c10::attr::Subgraph)->nodes().begin() !=
                                            n->g(c10::attr::Subgraph)->nodes().end())
      out.push_back(n);
  }
}

}  // namespace

int run_forks_in_place(torch::jit::Graph& graph) {
  std::vector<torch::jit::Node*> forks;
  collect_forks(graph.block(), forks);
  for (torch::jit::Node* fork : forks) {
    std::shared_ptr<torch::jit::Graph> sub = fork->g(c10::attr::Subgraph);
    if (sub->outputs().size() != 1) continue;
    torch::jit::WithInsertPoint guard(fork);
    std::vector<torch::jit::Value*> results = torch::jit::insertGraph(graph, *sub, fork->inputs());
    auto done = std::make_shared<torch::jit::Graph>();
    torch::jit::Value* in = done->addInput()->setType(results.at(0)->type());
    done->registerOutput(in);
    torch::jit::Node* ready = graph.create(c10::prim::fork, {results.at(0)}, 1);
    ready->g_(c10::attr::Subgraph, done);
    ready->output()->setType(fork->output()->type());
    graph.insertNode(ready);
    fork->output()->replaceAllUsesWith(ready->output());
    fork->destroy();
  }
  return static_cast<int>(forks.size());
}

}  // namespace qreport::instrumentation
