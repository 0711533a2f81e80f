// Instrumentation on scripted TorchScript fixtures (data/make_graph_fixtures.py).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <map>
#include <set>
#include <unordered_map>

#include <torch/csrc/jit/ir/irparser.h>

#include "instrumentation/graph_passes.h"
#include "instrumentation/instrumentation.h"
#include "calibration/calibration.h"
#include "model/model.h"
#include "test_support.h"

using namespace qreport;
using instrumentation::Instrumenter;
using instrumentation::Side;

namespace {

int count(const std::vector<std::string>& v, const std::string& s) { return static_cast<int>(std::count(v.begin(), v.end(), s)); }

struct Recorder {
  std::map<int64_t, std::vector<at::Tensor>> seen;
  instrumentation::ObserveSink sink() {
    return [this](int64_t id, const at::Tensor& x) { seen[id].push_back(x.clone()); };
  }
};

std::vector<c10::IValue> args(at::Tensor x) { return {x}; }

}  // namespace

TEST_CASE("two instances of one class are observed separately") {
  auto m = model::Model::load(fixture("graph/shared_class.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{"b0.conv", "b0.relu", "b1.conv", "b1.relu"});
  CHECK(in.observe("b0.conv", Side::Input, 0) == 1);
  CHECK(in.observe("b1.conv", Side::Output, 1) == 1);
  Recorder rec;
  at::Tensor x = at::randn({1, 2, 3, 3});
  in.run(args(x), rec.sink());
  REQUIRE(rec.seen[0].size() == 1);
  REQUIRE(rec.seen[1].size() == 1);
  CHECK(at::equal(rec.seen[0][0], x));
  at::Tensor y = m.module().forward({x}).toTensor();
  // b1.conv's output, then b1.relu: the model output is relu(observed).
  CHECK(at::allclose(at::relu(rec.seen[1][0]), y));
  // The loaded module's own graphs are untouched.
  std::ostringstream os;
  os << *m.module().get_method("forward").graph();
  CHECK(os.str().find("qreport::observe") == std::string::npos);
  CHECK(in.graph_text().find("qreport::observe") != std::string::npos);
}

TEST_CASE("observers survive the executor's optimisations: every run observes") {
  auto m = model::Model::load(fixture("graph/shared_class.pt"));
  Instrumenter in(m);
  in.observe("b1.relu", Side::Output, 7);
  Recorder rec;
  for (int i = 0; i < 6; ++i) in.run(args(at::randn({1, 2, 3, 3})), rec.sink());
  CHECK(rec.seen[7].size() == 6);
}

TEST_CASE("a module called twice is two call sites, both observed") {
  auto m = model::Model::load(fixture("graph/called_twice.pt"));
  Instrumenter in(m);
  CHECK(count(in.call_sites(), "act") == 2);
  CHECK(in.observe("act", Side::Input, 0) == 2);
  Recorder rec;
  in.run(args(at::randn({2, 3})), rec.sink());
  CHECK(rec.seen[0].size() == 2);
}

TEST_CASE("traced, a module called twice is two call sites (forward and forward1), both observed") {
  auto m = model::Model::load(fixture("graph/called_twice_traced.pt"));
  Instrumenter in(m);
  CHECK(count(in.call_sites(), "act") == 2);
  CHECK(in.observe("act", Side::Input, 0) == 2);
  Recorder rec;
  at::Tensor x = at::randn({2, 3});
  in.run(args(x), rec.sink());
  REQUIRE(rec.seen[0].size() == 2);
  CHECK(at::equal(rec.seen[0][0], x));
  CHECK(at::allclose(at::relu(rec.seen[0][1]), m.module().forward({x}).toTensor()));
}

TEST_CASE("ModuleList members are named by index") {
  auto m = model::Model::load(fixture("graph/module_list.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{"layers.0", "layers.1", "layers.2"});
}

TEST_CASE("calls in both branches of an if: only the executed one is observed") {
  auto m = model::Model::load(fixture("graph/branches.pt"));
  Instrumenter in(m);
  CHECK(count(in.call_sites(), "fc") == 2);
  CHECK(in.observe("fc", Side::Input, 0) == 2);
  in.observe("pos", Side::Input, 1);
  in.observe("neg", Side::Input, 2);
  Recorder rec;
  in.run(args(at::ones({1, 3})), rec.sink());
  in.run(args(-at::ones({1, 3})), rec.sink());
  CHECK(rec.seen[0].size() == 2);
  CHECK(rec.seen[1].size() == 1);
  CHECK(rec.seen[2].size() == 1);
}

TEST_CASE("children of a fused module fall back to the fused module's call site") {
  auto m = model::Model::load(fixture("graph/fused.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{"conv"});
  CHECK(in.resolve("conv.0") == std::optional<std::string>("conv"));
  CHECK(in.resolve("conv.1") == std::optional<std::string>("conv"));
  CHECK(in.resolve("conv") == std::optional<std::string>("conv"));
}

TEST_CASE("a module that is never called has no call site") {
  auto m = model::Model::load(fixture("graph/never_called.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{"fc"});
  CHECK_FALSE(in.resolve("unused").has_value());
}

TEST_CASE("a model that is itself a leaf is observed at its own forward") {
  auto m = model::Model::load(fixture("graph/bare_linear.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{""});
  CHECK(in.observe("", Side::Input, 0) == 1);
  CHECK(in.observe("", Side::Output, 1) == 1);
  Recorder rec;
  in.run(args(at::ones({4, 3})), rec.sink());
  CHECK(rec.seen[1][0].sizes() == at::IntArrayRef({4, 2}));
}

TEST_CASE("two-input forward") {
  auto m = model::Model::load(fixture("graph/two_input.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{"a", "b"});
  in.observe("b", Side::Input, 0);
  Recorder rec;
  at::Tensor y = at::randn({4, 3});
  in.run({at::randn({4, 2}), y, 1.0}, rec.sink());
  CHECK(at::equal(rec.seen[0][0], y));
}

TEST_CASE("torchvision resnet18 and mobilenet_v2, scripted directly") {
  auto r = model::Model::load(fixture("graph/resnet18.pt"));
  Instrumenter ir(r);
  CHECK(ir.call_sites().size() == 60);
  CHECK(count(ir.call_sites(), "layer1.0.relu") == 2);
  CHECK(count(ir.call_sites(), "layer4.1.conv2") == 1);
  auto mb = model::Model::load(fixture("graph/mobilenet_v2.pt"));
  Instrumenter im(mb);
  CHECK(im.call_sites().size() == 274);  // InvertedResidual calls self.conv in both branches of an if
  CHECK(count(im.call_sites(), "features.1.conv.0.0") == 2);  // the if is on an attribute: both branches stay
  CHECK(count(im.call_sites(), "features.3.conv.0.0") == 2);
  im.observe("features.3.conv.0.0", Side::Input, 0);
  Recorder rec;
  im.run(args(at::randn({1, 3, 64, 64})), rec.sink());
  CHECK(rec.seen[0].size() == 1);
}

TEST_CASE("a Linear applied with F.linear(x, self.proj.weight) is a functional call site of proj") {
  auto m = model::Model::load(fixture("graph/functional_linear.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{"act", "proj"});
  CHECK(in.functional_op("proj") == "aten::linear");
  CHECK(in.functional_op("act").empty());
  CHECK(in.observe("proj", Side::Input, 0) == 1);
  CHECK(in.observe("proj", Side::Output, 1) == 1);
  Recorder rec;
  at::Tensor x = at::randn({2, 3});
  in.run(args(x), rec.sink());
  CHECK(at::equal(rec.seen[0][0], x));
  CHECK(at::allclose(at::relu(rec.seen[1][0]), m.module().forward({x}).toTensor()));
}

TEST_CASE("a functional call site applies its layer alone with the call's own arguments") {
  auto m = model::Model::load(fixture("graph/functional_linear.pt"));
  Instrumenter in(m);
  auto apply = in.functional_apply("proj");
  REQUIRE(apply.has_value());
  const at::Tensor x = at::randn({2, 3}), w = at::randn({4, 3});
  const at::Tensor bias = m.submodule("proj").attr("bias").toTensor();
  CHECK(at::equal((*apply)(x, w), at::linear(x, w, bias)));
  CHECK_FALSE(in.functional_apply("act").has_value());  // a module call: its forward applies it
  // MultiheadAttention's out_proj: its bias reaches aten::linear through the inlined function's arguments.
  auto a = model::Model::load(fixture("graph/attention.pt"));
  Instrumenter ia(a);
  auto out_proj = ia.functional_apply("attn.out_proj");
  REQUIRE(out_proj.has_value());
  const at::Tensor y = at::randn({2, 3, 4}), wo = at::randn({4, 4});
  CHECK(at::equal((*out_proj)(y, wo), at::linear(y, wo, a.submodule("attn.out_proj").attr("bias").toTensor())));
}

TEST_CASE("nn.LSTM and nn.GRU, called through their forward overloads, are call sites") {
  auto m = model::Model::load(fixture("graph/recurrent.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{"lstm", "gru"});
  CHECK(in.observe("gru", Side::Input, 0) == 1);
  // The outputs are (output, state) tuples: not observed, with a warning.
  CHECK(in.observe("lstm", Side::Output, 1) == 0);
  REQUIRE(in.warnings().size() == 1);
  CHECK(in.warnings()[0] == "the output of 'lstm' is Tuple[Tensor, Tuple[Tensor, Tensor]], not a Tensor; not observed");
  Recorder rec;
  in.run(args(at::randn({2, 5, 3})), rec.sink());
  REQUIRE(rec.seen[0].size() == 1);
  CHECK(rec.seen[0][0].sizes() == at::IntArrayRef({2, 5, 4}));
}

TEST_CASE("a fused fast path is found, and the slow path runs under inference mode") {
  auto m = model::Model::load(fixture("graph/attention.pt"));
  Instrumenter in(m);
  CHECK(in.fast_paths() == std::vector<std::string>{"aten::_native_multi_head_attention (attn.out_proj)"});
  CHECK(in.functional_op("attn.out_proj") == "aten::linear");
  CHECK(in.graph_text().find("aten::is_grad_enabled") == std::string::npos);
  REQUIRE(in.observe("attn.out_proj", Side::Output, 0) >= 1);
  in.observe("drop", Side::Input, 1);
  Recorder rec;
  at::Tensor x = at::randn({2, 3, 4});
  {
    c10::InferenceMode inference;  // as calibration runs: the fast path would be taken here
    in.run(args(x), rec.sink());
  }
  REQUIRE(rec.seen[0].size() == 1);  // out_proj ran, once, on [T * B, F]
  // and its output, back in [B, T, F], is what the model returns
  CHECK(at::allclose(rec.seen[0][0].view({3, 2, 4}).transpose(0, 1), rec.seen[1][0]));
  CHECK(at::allclose(rec.seen[1][0], m.module().forward({x}).toTensor(), 1e-5, 1e-6));
}

TEST_CASE("the layout of a weightless module's input comes from the layer that produces or consumes it") {
  using instrumentation::Layout;
  auto m = model::Model::load(fixture("graph/layouts.pt"));
  Instrumenter in(m);
  auto after_conv = in.input_layout("after_conv");
  CHECK(after_conv.layout == Layout::Channels);
  CHECK(after_conv.because == "produced by conv (Conv1d)");
  auto before_linear = in.input_layout("before_linear");
  CHECK(before_linear.layout == Layout::Features);
  CHECK(before_linear.because == "consumed by fc (Linear)");
  CHECK(in.input_layout("unknown").layout == Layout::Unknown);
  CHECK(instrumentation::layout_of_module_type("torch.nn.modules.normalization.LayerNorm") == Layout::Features);
  CHECK(instrumentation::layout_of_module_type("torch.nn.modules.batchnorm.BatchNorm1d") == Layout::Channels);
  CHECK(instrumentation::layout_of_module_type("__main__.MyLinear") == Layout::Unknown);
}

TEST_CASE("the layout is followed through the tuple a weightless module returns (a traced LlamaRMSNorm's)") {
  using instrumentation::Layout;
  auto m = model::Model::load(fixture("graph/tuple_layouts.pt"));
  Instrumenter in(m);
  auto first = in.input_layout("first");
  CHECK(first.layout == Layout::Features);
  CHECK(first.because == "consumed by fc (Linear)");
  auto third = in.input_layout("third");
  CHECK(third.layout == Layout::Features);
  CHECK(third.because == "produced by fc (Linear)");
  auto fourth = in.input_layout("fourth");
  CHECK(fourth.layout == Layout::Features);
  CHECK(fourth.because == "produced by embed (Embedding)");
}

namespace {

// The tensors of a torch.save'd list (the fixtures' forward-hook values).
std::vector<at::Tensor> saved_list(const std::string& path) {
  auto archive = calibration::Archive::open(path, {});
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < archive.size(); ++i) out.push_back(archive.batch(i).positional.at(0).clone());
  return out;
}

// Observes the inputs of `fqns` and runs forward once on the fixtures' input.
std::vector<at::Tensor> observed_inputs(const std::string& model, const std::vector<std::string>& fqns) {
  auto m = model::Model::load(fixture(model));
  Instrumenter in(m);
  for (size_t i = 0; i < fqns.size(); ++i) {
    REQUIRE(in.has_call_site(fqns[i]));
    CHECK(in.observe(fqns[i], Side::Input, static_cast<int64_t>(i)) == 1);
  }
  Recorder rec;
  in.run({saved_list(fixture("graph/calib_iface.pt")).at(0)}, rec.sink());
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < fqns.size(); ++i) {
    REQUIRE(rec.seen[static_cast<int64_t>(i)].size() == 1);
    out.push_back(rec.seen[static_cast<int64_t>(i)][0]);
  }
  return out;
}

}  // namespace

TEST_CASE("a submodule typed by a module interface is observed through the module it holds") {
  auto m = model::Model::load(fixture("graph/interface.pt"));
  Instrumenter in(m);
  CHECK(in.call_sites() == std::vector<std::string>{"blk.fc1", "blk.fc2"});
  CHECK(in.warnings().empty());
  auto got = observed_inputs("graph/interface.pt", {"blk.fc1", "blk.fc2"});
  auto want = saved_list(fixture("graph/interface_hooks.pt"));
  REQUIRE(want.size() == 2);
  CHECK(got[1].sizes() == at::IntArrayRef({3, 8}));  // fc2's own input, not blk's
  CHECK(at::equal(got[0], want[0]));
  CHECK(at::equal(got[1], want[1]));
}

TEST_CASE("calls through torch.jit.fork are call sites, observed like direct calls") {
  auto m = model::Model::load(fixture("graph/forked.pt"));
  Instrumenter in(m);
  CHECK(count(in.call_sites(), "a") == 1);
  CHECK(count(in.call_sites(), "layers.0") == 1);
  CHECK(count(in.call_sites(), "layers.1") == 1);
  auto got = observed_inputs("graph/forked.pt", {"a", "layers.0", "layers.1"});
  auto want = saved_list(fixture("graph/forked_hooks.pt"));
  REQUIRE(want.size() == 3);
  for (size_t i = 0; i < 3; ++i) CHECK(at::equal(got[i], want[i]));
}

TEST_CASE("a rewritten input reaches that call only, and passes unchanged without a rewrite sink") {
  auto m = model::Model::load(fixture("graph/shared_class.pt"));
  Instrumenter in(m);
  CHECK(in.rewrite_input("b1.conv", 3) == 1);
  CHECK(in.observe("b0.relu", Side::Output, 0) == 1);
  CHECK(in.graph_text().find("qreport::rewrite") != std::string::npos);
  at::Tensor x = at::randn({1, 2, 3, 3});
  const at::Tensor y = m.module().forward({x}).toTensor();
  Recorder rec;
  CHECK(at::equal(in.run(args(x), rec.sink(), instrumentation::RewriteSink()).toTensor(), y));
  // b1.conv sees zeros: the model's output is relu(b1.conv's bias) everywhere; b0 is untouched.
  std::vector<int64_t> ids;
  instrumentation::RewriteSink zero = [&](int64_t id, const at::Tensor& v) {
    ids.push_back(id);
    return at::zeros_like(v);
  };
  Recorder rec2;
  at::Tensor z = in.run(args(x), rec2.sink(), zero).toTensor();
  CHECK(ids == std::vector<int64_t>{3});
  at::Tensor bias = m.module().attr("b1").toModule().attr("conv").toModule().attr("bias").toTensor();
  CHECK(at::allclose(z, at::relu(bias).view({1, -1, 1, 1}).expand_as(z)));
  CHECK(at::equal(rec2.seen[0][0], rec.seen[0][0]));
}

// stable_values.cpp: which observed values the observe worker may read later without a copy.
TEST_CASE("observed values that no later op writes: not those an in-place op or a residual add_ writes") {
  auto r = model::Model::load(fixture("graph/resnet18.pt"));
  Instrumenter ir(r);
  ir.observe("conv1", Side::Output, 0);           // into bn1, which returns a new tensor
  ir.observe("bn1", Side::Output, 1);             // into relu(inplace=True)
  ir.observe("layer1.0.conv1", Side::Input, 2);   // the block's input: the identity, only read
  ir.observe("layer1.0.bn2", Side::Output, 3);    // out += identity writes it
  ir.observe("fc", Side::Output, 4);              // the model's output
  ir.observe("layer1.0.relu", Side::Output, 5);   // both calls: relu_'s results, only read afterwards
  ir.observe("layer1.0.conv2", Side::Output, 6);  // into bn2, a new tensor
  CHECK(ir.stable_observed_ids() == std::set<int64_t>{0, 2, 4, 5, 6});

  auto mb = model::Model::load(fixture("graph/mobilenet_v2.pt"));
  Instrumenter im(mb);
  im.observe("features.3.conv.0.0", Side::Output, 0);  // a Conv's output into BatchNorm
  im.observe("features.3.conv.0.1", Side::Output, 1);  // BatchNorm's output into ReLU6(inplace=True)
  im.observe("features.3.conv.1.0", Side::Input, 2);   // ReLU6's result (written before, never after)
  CHECK(im.stable_observed_ids() == std::set<int64_t>{0, 2});
}

// shared_values.cpp: observe ops that always see one tensor, back to back.
TEST_CASE("observations of one value back to back: a Conv's output and the next module's input, never a call site seen twice") {
  auto mb = model::Model::load(fixture("graph/mobilenet_v2.pt"));
  Instrumenter im(mb);
  im.observe("features.3.conv.0.0", Side::Output, 0);  // the Conv's output ...
  im.observe("features.3.conv.0.1", Side::Output, 1);  // BatchNorm's output ...
  im.observe("features.3.conv.0.2", Side::Input, 2);   // ... is ReLU6's input
  im.observe("features.3.conv.0.1", Side::Input, 3);   // ... is BatchNorm's input
  im.observe("features.3.conv.1.0", Side::Input, 4);   // ReLU6's result, after an op that writes it
  const auto pairs = im.observations_of_one_value();
  CHECK(std::set<std::pair<int64_t, int64_t>>(pairs.begin(), pairs.end()) ==
        std::set<std::pair<int64_t, int64_t>>{{0, 3}, {1, 2}});

  // resnet18's layer1.0.relu is called twice (two observe ops for id 1): never paired.
  auto r = model::Model::load(fixture("graph/resnet18.pt"));
  Instrumenter ir(r);
  ir.observe("layer1.0.bn1", Side::Output, 0);
  ir.observe("layer1.0.relu", Side::Input, 1);
  ir.observe("layer1.0.conv2", Side::Output, 2);
  ir.observe("layer1.0.bn2", Side::Input, 3);
  CHECK(ir.observations_of_one_value() == std::vector<std::pair<int64_t, int64_t>>{{2, 3}});
}

TEST_CASE("observations of one value: another value's observe between, and an in-place op between") {
  auto g = std::make_shared<torch::jit::Graph>();
  std::unordered_map<std::string, torch::jit::Value*> v;
  torch::jit::parseIR(R"IR(
graph(%x : Tensor):
  %y : Tensor = aten::relu(%x)
  %z : Tensor = aten::relu_(%y)
  return (%z)
)IR", g.get(), v);
  // observe ops cannot be written in IR text (no outputs): inserted after a node, each after its id's
  // constant, as the instrumenter does.
  auto observe_after = [&](torch::jit::Node* after, torch::jit::Value* value, int64_t id) {
    torch::jit::WithInsertPoint point(after->next());
    torch::jit::Value* c = g->insertConstant(id);
    g->insertNode(g->create(instrumentation::observe_symbol(), {value, c}, 0));
  };
  torch::jit::Node* relu = v.at("y")->node();
  torch::jit::Node* relu_ = v.at("z")->node();
  observe_after(relu_, v.at("y"), 3);  // after relu_, which writes y
  observe_after(relu, v.at("y"), 2);
  observe_after(relu, v.at("x"), 4);   // another value between: still one run
  observe_after(relu, v.at("y"), 1);
  CHECK(instrumentation::observations_of_one_value(*g) == std::vector<std::pair<int64_t, int64_t>>{{1, 2}});
}
