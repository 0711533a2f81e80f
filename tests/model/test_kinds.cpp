#include "model/model.h"
#include "test_support.h"

using namespace qreport::model;

TEST_CASE("demangle_type_name strips __torch__ and ___torch_mangle_N") {
  CHECK(demangle_type_name("__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d") == "torch.nn.modules.conv.Conv2d");
  CHECK(demangle_type_name("__torch__.torch.ao.nn.intrinsic.modules.fused.___torch_mangle_1.ConvReLU2d") ==
        "torch.ao.nn.intrinsic.modules.fused.ConvReLU2d");
  CHECK(demangle_type_name("__torch__.Block") == "Block");
}

TEST_CASE("classify recognises Linear, Conv, QAT, fused and observer modules") {
  auto lin = classify("torch.nn.modules.linear.Linear");
  CHECK(lin.is_linear);
  CHECK(lin.exact_iwe);
  auto ndq = classify("torch.nn.modules.linear.NonDynamicallyQuantizableLinear");
  CHECK(ndq.is_linear);
  CHECK_FALSE(ndq.exact_iwe);  // IWE matches the exact type, as PyTorch does
  CHECK(classify("torch.nn.modules.conv.Conv1d").conv_dims == 1);
  CHECK(classify("torch.nn.modules.conv.Conv3d").conv_dims == 3);
  CHECK(classify("torch.nn.modules.conv.ConvTranspose2d").conv_dims == 0);
  auto qat = classify("torch.ao.nn.qat.modules.conv.Conv2d");
  CHECK(qat.is_qat);
  CHECK(qat.exact_iwe);
  CHECK(qat.conv_dims == 2);
  CHECK(classify("torch.nn.qat.modules.linear.Linear").is_linear);
  auto fused = classify("torch.ao.nn.intrinsic.modules.fused.ConvReLU2d");
  CHECK(fused.is_fused);
  CHECK_FALSE(fused.is_linear_or_conv());
  CHECK(classify("torch.nn.intrinsic.modules.fused.LinearReLU").is_fused);
  auto qat_fused = classify("torch.ao.nn.intrinsic.qat.modules.conv_fused.ConvBnReLU2d");
  CHECK(qat_fused.is_qat);
  CHECK(qat_fused.conv_dims == 2);
  CHECK(classify("torch.ao.nn.intrinsic.qat.modules.linear_relu.LinearReLU").is_linear);
  CHECK(classify("torch.ao.quantization.observer.MinMaxObserver").is_observer);
  CHECK(classify("torch.ao.quantization.fake_quantize.FakeQuantize").is_observer);
  CHECK(classify("torch.nn.modules.activation.ReLU").base == "Other");
  CHECK(classify("Block").base == "Other");
}

TEST_CASE("parent_fqn") {
  CHECK(parent_fqn("a.b.c") == "a.b");
  CHECK(parent_fqn("a") == "");
}
