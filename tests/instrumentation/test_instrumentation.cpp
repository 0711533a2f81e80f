// Instrumentation on scripted TorchScript fixtures (data/make_graph_fixtures.py).
#include <ATen/ATen.h>

#include <map>

#include "instrumentation/instrumentation.h"
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
