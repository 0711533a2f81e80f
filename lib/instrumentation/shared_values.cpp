// Observe ops that read one value back to back: a Conv's output observed for its range and, right after,
// the same tensor as the input of the ReLU6 that follows (mobilenet_v2: 35 such pairs). The later point's
// channel statistics read the tensor whole anyway and come out with its min and max, so the earlier
// point can take its range from them instead of reading (and, on the observe worker, copying) it again.
//
// Only where nothing can tell the two points apart: their observe ops stand in one run of consecutive
// observe ops on the same value, with nothing between them but constants (their ids) and attribute reads
// (the next call's module), which write nothing; and every observe op of either id is in such a run with
// one of the other's (a call site in both branches of an if gives two runs, each with both; a module
// called twice gives its id two ops, and a run with only one of them disqualifies the pair). Then the two
// fire together, always, on the same unchanged tensor.
#include <algorithm>
#include <map>
#include <set>

#include "instrumentation/graph_passes.h"

namespace qreport::instrumentation {
namespace {

std::optional<int64_t> id_of(torch::jit::Node* n) {
  const auto id = torch::jit::toIValue(n->input(1));
  if (!id || !id->isInt()) return std::nullopt;
  return id->toInt();
}

}  // namespace

std::vector<std::pair<int64_t, int64_t>> observations_of_one_value(torch::jit::Graph& instrumented) {
  const c10::Symbol observe = observe_symbol();
  // Runs of observe ops, with the constants and attribute reads between them.
  std::vector<std::vector<torch::jit::Node*>> runs;
  std::map<int64_t, int> ops;  // observe ops per id, in the whole graph
  std::set<int64_t> unusable;  // ids twice in one run
  for_each_node(instrumented.block(), [&](torch::jit::Node* n) {
    if (n->kind() != observe) return;
    const auto id = id_of(n);
    if (!id) return;
    ++ops[*id];
    torch::jit::Node* p = n->prev();
    while (p->kind() == c10::prim::Constant || p->kind() == c10::prim::GetAttr) p = p->prev();
    if (p->kind() != observe || runs.empty() || runs.back().back() != p) runs.emplace_back();
    runs.back().push_back(n);
  });
  struct Pair {
    int runs = 0;                     // runs holding both on one value
    std::pair<int64_t, int64_t> ids;  // as first met: (earlier, later)
  };
  std::map<std::pair<int64_t, int64_t>, Pair> pairs;  // by (lower id, higher id)
  for (const auto& run : runs) {
    std::map<int64_t, int> in_run;
    for (torch::jit::Node* n : run)
      if (++in_run[*id_of(n)] > 1) unusable.insert(*id_of(n));
    for (size_t i = 0; i < run.size(); ++i)
      for (size_t j = i + 1; j < run.size(); ++j) {
        const int64_t a = *id_of(run[i]), b = *id_of(run[j]);
        if (a == b || run[i]->input(0) != run[j]->input(0)) continue;
        Pair& p = pairs[std::minmax(a, b)];
        if (p.runs++ == 0) p.ids = {a, b};
      }
  }
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& [key, p] : pairs)
    if (!unusable.count(key.first) && !unusable.count(key.second) && p.runs == ops[key.first] &&
        p.runs == ops[key.second])
      out.push_back(p.ids);
  return out;
}

}  // namespace qreport::instrumentation
