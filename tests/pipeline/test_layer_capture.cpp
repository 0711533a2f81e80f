// LayerCapture: what calibration keeps for the error pass. Copies (not views) of the first batches' values,
// per point and batch in call order; a point whose copies overflow the budget keeps none (outputs get half
// of it); nothing is handed out before the captured batches are complete.
#include <ATen/ATen.h>

#include "pipeline/layer_capture.h"
#include "test_support.h"

using qreport::detectors::Side;
using qreport::pipeline::LayerCapture;

TEST_CASE("layer capture: copies of the first batches, per batch in call order") {
  LayerCapture c({{0, {"a", Side::Input}}, {3, {"a", Side::Output}}}, 2, 1 << 20);
  CHECK(c.active());
  at::Tensor x = at::ones({4, 4});
  c.offer(0, x);
  c.offer(0, x * 2);
  c.offer(3, x * 3);
  c.offer(7, x);                         // not a captured point
  c.offer(0, at::ones({2}, at::kLong));  // not floating: the error pass skips it as well
  x.fill_(9);                            // the graph writes into the tensor in place after the call
  CHECK(c.calls("a", Side::Input) == nullptr);  // the second batch is still to come
  c.batch_done();
  c.offer(0, at::full({1}, 5.0));
  c.batch_done();
  CHECK_FALSE(c.active());
  c.offer(0, at::ones({1}));  // after the captured batches: ignored
  const auto* in = c.calls("a", Side::Input);
  REQUIRE(in != nullptr);
  REQUIRE(in->size() == 2);
  REQUIRE((*in)[0].size() == 2);
  CHECK((*in)[0][0].sum().item<float>() == 16.0f);
  CHECK((*in)[0][1].sum().item<float>() == 32.0f);
  REQUIRE((*in)[1].size() == 1);
  CHECK((*in)[1][0].item<float>() == 5.0f);
  const auto* out = c.calls("a", Side::Output);
  REQUIRE(out != nullptr);
  CHECK((*out)[0].size() == 1);
  CHECK((*out)[1].empty());
  CHECK(c.calls("b", Side::Input) == nullptr);
  CHECK(c.bytes() == (16 + 16 + 16 + 1) * 4);
  c.clear();
  CHECK(c.bytes() == 0);
  CHECK(c.calls("a", Side::Input) == nullptr);
}

TEST_CASE("layer capture: a point over the budget keeps nothing; outputs stop at half of it") {
  // Inputs spare a forward of the whole model, outputs one float layer: outputs never take the second half.
  LayerCapture c({{0, {"a", Side::Input}}, {1, {"b", Side::Input}}, {2, {"b", Side::Output}}}, 1, 400);
  c.offer(2, at::ones({50}));  // 200 bytes: an output is kept while the total stays within half the budget
  c.offer(0, at::ones({25}));  // 300
  c.offer(1, at::ones({25}));  // 400
  c.offer(0, at::ones({1}));   // 404 > 400: a's copies are all dropped (100 + this one)
  c.offer(0, at::ones({1}));   // dropped points stay dropped
  c.batch_done();
  CHECK(c.calls("a", Side::Input) == nullptr);
  REQUIRE(c.calls("b", Side::Input) != nullptr);
  REQUIRE(c.calls("b", Side::Output) != nullptr);
  CHECK(c.bytes() == 300);

  LayerCapture d({{0, {"a", Side::Input}}, {1, {"a", Side::Output}}}, 1, 400);
  d.offer(0, at::ones({25}));  // 100 bytes
  d.offer(1, at::ones({26}));  // 100 + 104 > 200, the outputs' half
  d.batch_done();
  CHECK(d.calls("a", Side::Input) != nullptr);
  CHECK(d.calls("a", Side::Output) == nullptr);
  CHECK(d.bytes() == 100);
}

TEST_CASE("layer capture: no points or no batches, nothing active") {
  LayerCapture none({}, 3, 1 << 20);
  CHECK_FALSE(none.active());
  LayerCapture zero({{0, {"a", Side::Input}}}, 0, 1 << 20);
  CHECK_FALSE(zero.active());
  CHECK(zero.calls("a", Side::Input) != nullptr);  // zero batches captured: complete, and empty
}

TEST_CASE("layer capture: an output is kept only where applying the layer again costs more") {
  using qreport::pipeline::output_worth_keeping;
  CHECK_FALSE(output_worth_keeping(at::Tensor()));
  CHECK_FALSE(output_worth_keeping(at::zeros({0, 4})));
  CHECK_FALSE(output_worth_keeping(at::zeros({32, 1, 3, 3})));   // depthwise 3x3: 9 per output value
  CHECK_FALSE(output_worth_keeping(at::zeros({96, 16, 1, 1})));  // a pointwise Conv of 16 channels
  CHECK_FALSE(output_worth_keeping(at::zeros({10, 127})));        // just under the threshold
  CHECK(output_worth_keeping(at::zeros({10, 128})));
  CHECK(output_worth_keeping(at::zeros({64, 64, 3, 3})));  // resnet's 3x3 Conv: 576
  CHECK(output_worth_keeping(at::zeros({3072, 768})));     // a transformer's MLP Linear
}
