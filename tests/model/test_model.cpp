#include "common/errors.h"
#include "model/model.h"
#include "test_support.h"

using namespace qreport;

TEST_CASE("load builds the module tree in named_modules order") {
  auto m = model::Model::load(fixture("graph/shared_class.pt"));
  std::vector<std::string> fqns;
  for (const auto& n : m.tree().nodes()) fqns.push_back(n.fqn);
  CHECK(fqns == std::vector<std::string>{"", "b0", "b0.conv", "b0.relu", "b1", "b1.conv", "b1.relu"});
  const auto* conv = m.tree().find("b1.conv");
  REQUIRE(conv != nullptr);
  CHECK(conv->type_name == "torch.nn.modules.conv.Conv2d");
  CHECK(conv->kind.conv_dims == 2);
  CHECK(m.tree().nodes()[conv->parent].fqn == "b1");
  CHECK_FALSE(m.tree().is_call_leaf(*m.tree().find("b1")));
  CHECK(m.tree().is_call_leaf(*conv));
  CHECK(m.forward_arg_names() == std::vector<std::string>{"x"});
}

TEST_CASE("fused modules are call leaves with children") {
  auto m = model::Model::load(fixture("graph/fused.pt"));
  const auto* conv = m.tree().find("conv");
  REQUIRE(conv != nullptr);
  CHECK(conv->kind.is_fused);
  CHECK(conv->has_children());
  CHECK(m.tree().is_call_leaf(*conv));
  CHECK(m.tree().find("conv.0")->kind.conv_dims == 2);
}

TEST_CASE("forward arguments with defaults are optional") {
  auto m = model::Model::load(fixture("graph/two_input.pt"));
  CHECK(m.forward_arg_names() == std::vector<std::string>{"x", "y", "scale"});
  CHECK(m.forward_required_args() == 2);
}

TEST_CASE("loading something that is not a TorchScript model is an InputError") {
  CHECK_THROWS_WITH_AS(model::Model::load("/nonexistent.pt"), "model '/nonexistent.pt' does not exist",
                       InputError);
  CHECK_THROWS_WITH_AS(model::Model::load("/tmp"), "model '/tmp' is a directory, not a file", InputError);
  try {
    model::Model::load(fixture("graph/calib_list.pt"));
    FAIL("expected InputError");
  } catch (const InputError& e) {
    // Says what the file is (LibTorch's own loader said "checkpoint corrupted").
    CHECK(std::string(e.what()).find("is a torch.save archive, not a TorchScript model") != std::string::npos);
  }
}
