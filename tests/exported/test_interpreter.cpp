// The interpreter against PyTorch: the fixture's exported program run on batches of two sizes must give
// what ExportedProgram.module() computed in Python, and the values observed at module-call boundaries
// must be what forward hooks saw on the eager model. Fixtures: data/make_exported_fixtures.py, in the
// folder named by QREPORT_EXPORTED_FIXTURES (tests/exported/test_exported.py makes them and runs this).
#include <algorithm>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "common/errors.h"
#include "exported/exported.h"
#include "test_support.h"  // doctest, after LibTorch's headers (glog's CHECK)

using namespace qreport;

namespace {

std::string pt2_fixture(const std::string& name) {
  const char* dir = std::getenv("QREPORT_EXPORTED_FIXTURES");
  REQUIRE_MESSAGE(dir, "QREPORT_EXPORTED_FIXTURES is not set (run tests/exported/test_exported.py)");
  return std::string(dir) + "/" + name;
}

// A shape line, then the float32 values (make_exported_fixtures.py, write_tensor).
at::Tensor read_tensor(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), path);
  std::string line;
  std::getline(in, line);
  std::vector<int64_t> shape;
  std::istringstream s(line);
  for (int64_t n; s >> n;) shape.push_back(n);
  at::Tensor t = at::empty(shape, at::kFloat);
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), static_cast<std::streamsize>(t.numel() * sizeof(float)));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(t.numel() * sizeof(float)));
  return t;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a - b).abs().max().item<double>();
}

}  // namespace

static void check_against_python(const std::string& name, std::vector<int> batches) {
  INFO(name);
  at::set_num_threads(1);  // as the fixtures were computed: a reduction split otherwise rounds otherwise
  exported::Program p = exported::Program::load(pt2_fixture(name + ".pt2"));
  for (int n : batches) {
    at::Tensor x = read_tensor(pt2_fixture(name + ".in" + std::to_string(n)));
    at::Tensor expected = read_tensor(pt2_fixture(name + ".out" + std::to_string(n)));
    std::vector<at::Tensor> out;
    {
      c10::InferenceMode guard;
      out = p.run({x});
    }
    REQUIRE(out.size() == 1);
    // The same ATen kernels on the same inputs: equal bits, not just close.
    CHECK_MESSAGE(max_abs_diff(out[0], expected) == 0.0, "batch " << n);
  }
}

TEST_CASE("the interpreter reproduces ExportedProgram.module() at two batch sizes") {
  check_against_python("conv_linear", {2, 5});
  check_against_python("encoder", {2, 3});  // attention, layer norms, sizes computed from the batch
  CHECK(exported::Program::load(pt2_fixture("conv_linear.pt2")).input_names() == std::vector<std::string>({"x"}));
}

TEST_CASE("module-call boundaries are the values forward hooks see") {
  exported::Program p = exported::Program::load(pt2_fixture("conv_linear.pt2"));
  std::map<int64_t, at::Tensor> seen;
  const std::vector<std::pair<std::string, exported::Side>> wanted = {
      {"conv", exported::Side::Input}, {"conv", exported::Side::Output}, {"fc", exported::Side::Input},
      {"fc", exported::Side::Output},  {"block.2", exported::Side::Input}, {"block.2", exported::Side::Output}};
  for (size_t id = 0; id < wanted.size(); ++id)
    CHECK(p.observe(wanted[id].first, wanted[id].second, static_cast<int64_t>(id)) == 1);
  CHECK(p.observe("relu", exported::Side::Input, 99) == 2);  // called twice: both calls
  at::Tensor x = read_tensor(pt2_fixture("conv_linear.in5"));
  {
    c10::InferenceMode guard;
    p.run({x}, [&](int64_t id, const at::Tensor& t) {
      if (!seen.count(id)) seen[id] = t.clone();
    });
  }
  for (size_t id = 0; id < wanted.size(); ++id) {
    const std::string side = wanted[id].second == exported::Side::Input ? "input" : "output";
    INFO(wanted[id].first << " " << side);
    REQUIRE(seen.count(static_cast<int64_t>(id)));
    CHECK(max_abs_diff(seen[static_cast<int64_t>(id)], read_tensor(pt2_fixture("conv_linear." + wanted[id].first + "." + side))) == 0.0);
  }
}

TEST_CASE("calls, modules and weights come from the program's metadata and signature") {
  exported::Program p = exported::Program::load(pt2_fixture("conv_linear.pt2"));
  std::vector<std::string> leaf_calls;
  for (const auto& c : p.calls())
    if (c.leaf) leaf_calls.push_back(c.fqn);
  const std::vector<std::string> expected_calls = {"conv", "bn", "relu", "fc", "relu", "block.0", "block.1", "block.2"};
  CHECK(leaf_calls == expected_calls);
  std::vector<std::string> modules;
  for (const auto& m : p.modules()) modules.push_back(m.fqn);
  const std::vector<std::string> expected_modules = {"",      "conv",    "bn",      "relu",    "fc",
                                                     "block", "block.0", "block.1", "block.2", "unused"};
  CHECK(modules == expected_modules);
  CHECK(p.modules()[4].type_name == "torch.nn.modules.linear.Linear");
  CHECK(p.modules()[9].type_name == "");  // never called: export saw no class for it
  CHECK(p.state("fc.weight").sizes() == at::IntArrayRef({5, 256}));
  CHECK(p.state("bn.running_var").defined());
  CHECK_FALSE(p.state("nope").defined());
}

TEST_CASE("inputs that do not fit the program are input errors") {
  exported::Program p = exported::Program::load(pt2_fixture("conv_linear.pt2"));
  c10::InferenceMode guard;
  CHECK_THROWS_AS(p.run({at::zeros({2, 3, 9, 8})}), InputError);
  CHECK_THROWS_AS(p.run({at::zeros({2, 3, 8, 8}, at::kDouble)}), InputError);
  CHECK_THROWS_AS(p.run({}), InputError);
  CHECK_THROWS_WITH_AS(p.run({at::zeros({2, 3, 8})}),
                       "input 'x' has 3 dimensions (the program was exported for Float [batch, 3, 8, 8])", InputError);
}

TEST_CASE("a module applied inside another's call is a functional call (MultiheadAttention's out_proj)") {
  exported::Program p = exported::Program::load(pt2_fixture("encoder.pt2"));
  std::vector<std::string> leaf_calls;
  for (const auto& c : p.calls())
    if (c.leaf) leaf_calls.push_back(c.fqn + (c.functional.empty() ? "" : " (" + c.functional + ")"));
  // The packed in-projection first: the pseudo-module "<mha>.in_proj" (issue 25).
  const std::vector<std::string> expected = {"self_attn.in_proj (aten::linear)", "self_attn.out_proj (aten::linear)",
                                             "dropout1", "norm1", "linear1", "dropout", "linear2", "dropout2", "norm2"};
  CHECK(leaf_calls == expected);
  int64_t rows = -1;
  CHECK(p.observe("self_attn.out_proj", exported::Side::Input, 0) == 1);
  at::Tensor x = read_tensor(pt2_fixture("encoder.in2"));
  c10::InferenceMode guard;
  p.run({x}, [&](int64_t, const at::Tensor& t) { rows = t.size(-1); });
  CHECK(rows == 16);  // the attention's output features, before the projection
}

TEST_CASE("the exported model as the detectors see it: in_proj pseudo-module, out_proj's class, weights") {
  exported::Program p = exported::Program::load(pt2_fixture("encoder.pt2"));
  const exported::ExportedModel view(p);
  std::vector<std::string> fqns;
  for (const auto& n : view.tree().nodes()) fqns.push_back(n.fqn);
  const auto at = std::find(fqns.begin(), fqns.end(), "self_attn");
  REQUIRE(at != fqns.end());
  REQUIRE(at + 1 != fqns.end());
  CHECK(*(at + 1) == "self_attn.in_proj");  // right after its MultiheadAttention
  const model::ModuleNode* in_proj = view.tree().find("self_attn.in_proj");
  REQUIRE(in_proj);
  CHECK(in_proj->kind.is_linear);
  CHECK(view.tree().nodes()[in_proj->parent].fqn == "self_attn");
  const model::ModuleNode* out_proj = view.tree().find("self_attn.out_proj");
  REQUIRE(out_proj);
  CHECK(out_proj->type_name == "torch.nn.modules.linear.NonDynamicallyQuantizableLinear");
  CHECK(view.weight_name("self_attn.in_proj") == "self_attn.in_proj_weight");
  CHECK(view.weight("self_attn.in_proj").equal(p.state("self_attn.in_proj_weight").detach()));
  CHECK(view.weight("linear1").sizes() == at::IntArrayRef({32, 16}));
  CHECK_FALSE(view.weight("dropout1").defined());

  // The layer applied alone through its node gives what the graph computes at that node.
  at::Tensor x = read_tensor(pt2_fixture("encoder.in2"));
  c10::InferenceMode guard;
  at::Tensor seen_in, seen_out;
  p.observe("linear1", exported::Side::Input, 0);
  p.observe("linear1", exported::Side::Output, 1);
  p.run({x}, [&](int64_t id, const at::Tensor& t) { (id == 0 ? seen_in : seen_out) = t; });
  CHECK(p.apply_weight_op("linear1.weight", seen_in, p.state("linear1.weight")).equal(seen_out));
  p.clear_observations();
  int calls = 0;
  p.run({x}, [&](int64_t, const at::Tensor&) { ++calls; });
  CHECK(calls == 0);
  // Layouts from the graph: dropout1 follows out_proj's linear (features last).
  CHECK(p.input_layout("dropout1") == 1);
}

TEST_CASE("resolve: a module's own leaf call, else its nearest ancestor's") {
  exported::Program p = exported::Program::load(pt2_fixture("conv_linear.pt2"));
  bool found = false;
  CHECK(p.resolve("block.0", &found) == "block.0");
  CHECK(found);
  CHECK(p.resolve("block.0.child", &found) == "block.0");  // no call of its own: the parent observes it
  CHECK(found);
  CHECK(p.resolve("block", &found) == "");  // a Sequential has no leaf call, nor has the root
  CHECK_FALSE(found);
  CHECK(p.resolve("unused", &found) == "");
  CHECK_FALSE(found);
}

TEST_CASE("a rewritten call input replaces its first reading node's operand alone; swap_weight swaps a weight") {
  at::set_num_threads(1);
  exported::Program p = exported::Program::load(pt2_fixture("conv_linear.pt2"));
  at::Tensor x = read_tensor(pt2_fixture("conv_linear.in2"));
  c10::InferenceMode guard;
  at::Tensor h;  // block.0's input, which the residual x[:, :3] also reads
  p.observe("block.0", exported::Side::Input, 0);
  const std::vector<at::Tensor> plain = p.run({x}, [&](int64_t, const at::Tensor& t) { h = t.clone(); });
  REQUIRE(h.defined());
  REQUIRE(p.rewrite_input("block.0", 7) == 1);
  at::Tensor observed;
  std::vector<int64_t> ids;
  const std::vector<at::Tensor> rewritten = p.run(
      {x}, [&](int64_t, const at::Tensor& t) { observed = t.clone(); },
      [&](int64_t id, const at::Tensor& t) {
        ids.push_back(id);
        return t * 2;
      });
  CHECK(ids == std::vector<int64_t>{7});
  CHECK(observed.equal(h));  // the observer before the call sees the float value
  // block(2h) + h[:, :3]: the residual keeps the original value.
  const at::Tensor b0 = p.apply_weight_op("block.0.weight", h * 2, p.state("block.0.weight"));
  const at::Tensor expected =
      p.apply_weight_op("block.2.weight", at::relu(b0), p.state("block.2.weight")) + h.slice(1, 0, 3);
  REQUIRE(rewritten.size() == 1);
  CHECK(max_abs_diff(rewritten[0], expected) <= 1e-6);
  CHECK(max_abs_diff(rewritten[0], plain[0]) > 1e-3);  // the rewrite changed something
  // Without a rewrite sink the call runs as before.
  CHECK(p.run({x})[0].equal(plain[0]));

  // A swapped weight is used by the node that applies it; state() stays the original, and restoring it
  // (the stored tensor itself, or an undefined one) restores the output bit for bit.
  const at::Tensor w = p.state("block.2.weight");
  CHECK(p.swap_weight("block.2.weight", at::zeros_like(w)) == 1);
  const at::Tensor zeroed = p.run({x})[0];
  CHECK(max_abs_diff(zeroed, p.state("block.2.bias").detach() + h.slice(1, 0, 3)) <= 1e-6);
  CHECK(p.state("block.2.weight").equal(w));
  p.swap_weight("block.2.weight", w);
  CHECK(p.run({x})[0].equal(plain[0]));
  p.swap_weight("block.2.weight", at::zeros_like(w));
  p.swap_weight("block.2.weight", at::Tensor());
  CHECK(p.run({x})[0].equal(plain[0]));
  CHECK_THROWS_AS(p.swap_weight("no.such.weight", w), InternalError);
  CHECK_THROWS_AS(p.swap_weight("block.2.bias", w), InternalError);  // read, but not as a Linear/Conv weight
  p.clear_observations();  // rewrites too
  ids.clear();
  p.run({x}, {}, [&](int64_t id, const at::Tensor& t) {
    ids.push_back(id);
    return t;
  });
  CHECK(ids.empty());
}

TEST_CASE("a skippable call takes its output from the SkipSink and its nodes do not run") {
  at::set_num_threads(1);
  exported::Program p = exported::Program::load(pt2_fixture("conv_linear.pt2"));
  at::Tensor x = read_tensor(pt2_fixture("conv_linear.in2"));
  c10::InferenceMode guard;
  at::Tensor h;  // block.0's input
  p.observe("block.0", exported::Side::Input, 0);
  const std::vector<at::Tensor> plain = p.run({x}, [&](int64_t, const at::Tensor& t) { h = t.clone(); });
  p.clear_observations();
  p.rewrite_input("block.0", 3);
  p.observe("block.0", exported::Side::Output, 3);
  REQUIRE(p.skippable("block.0", 3) == 1);
  CHECK(p.skippable("block.0", 4) == 0);  // its first node already asks
  const at::Tensor b0 = p.apply_weight_op("block.0.weight", h, p.state("block.0.weight"));
  const at::Tensor given = at::zeros_like(b0);
  std::vector<std::string> order;
  at::Tensor observed;
  const auto observe = [&](int64_t, const at::Tensor& t) {
    order.push_back("observe");
    observed = t;
  };
  const auto rewrite = [&](int64_t, const at::Tensor& t) {
    order.push_back("rewrite");
    return t;
  };
  const std::vector<at::Tensor> skipped = p.run({x}, observe, rewrite, [&](int64_t id) {
    order.push_back("skip " + std::to_string(id));
    return given;
  });
  // The rewrite first (it decides whether a sensitivity run may reuse), then the skip; the output's
  // observer sees the given value; the rest of the graph runs on it: block.2(relu(0)) + the residual.
  CHECK(order == std::vector<std::string>{"rewrite", "skip 3", "observe"});
  CHECK(observed.is_same(given));
  const at::Tensor expected =
      p.apply_weight_op("block.2.weight", at::relu(given), p.state("block.2.weight")) + h.slice(1, 0, 3);
  REQUIRE(skipped.size() == 1);
  CHECK(max_abs_diff(skipped[0], expected) <= 1e-6);
  // An undefined answer runs the call: the plain output, bit for bit.
  CHECK(p.run({x}, {}, {}, [](int64_t) { return at::Tensor(); })[0].equal(plain[0]));
  p.clear_observations();  // skips too
  CHECK(p.run({x}, {}, {}, [&](int64_t) { return given; })[0].equal(plain[0]));
}
