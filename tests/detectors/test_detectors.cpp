// Detectors on hand-fed statistics (reference oracle v3), with qreport's documented corrections.
#include <ATen/ATen.h>

#include "common/errors.h"
#include "detectors/detectors.h"
#include "model/model.h"
#include "oracle_v1.h"
#include "test_support.h"

using namespace qreport;
using namespace qreport::detectors;

namespace {

// PyTorch's behaviour: ch_axis 1 for every module (--ch-axis 1).
const ChannelAxes kPyTorchAxis = ChannelAxes::fixed_axis(1);

struct FakeStats : StatsLookup {
  std::map<std::pair<std::string, Side>, observers::ObservationPoint> points;
  const observers::ObservationPoint* find(const std::string& fqn, Side side) const override {
    auto it = points.find({fqn, side});
    return it == points.end() ? nullptr : &it->second;
  }
};


const Value& field(const DetectorResult& r, const std::string& fqn, const std::string& key) {
  for (const auto& m : r.modules)
    if (m.fqn == fqn)
      for (const auto& [k, v] : m.fields)
        if (k == key) return v;
  FAIL("missing " << fqn << "." << key);
  static Value none;
  return none;
}

const std::string kNote =
    "Note: outlier detection is only reliable for stationary distributions. We recommend running the static vs. "
    "dynamic detector to ensure activation data before modules above is stationary to ensure the most accurate "
    "results.";

}  // namespace

TEST_CASE("outlier detector on the v1 observer: a dead channel is not an outlier") {
  auto model = model::Model::load(fixture("graph/never_called.pt"));
  OutlierOptions o;
  o.reference_percentile = 0.9;
  auto det = make_outlier(o);
  FakeStats stats;
  auto& p = stats.points[{"fc", Side::Input}];
  for (const auto& req : det->requests(model, kPyTorchAxis)) {
    if (req.fqn != "fc") continue;
    p.want_minmax(*req.minmax_axis);
    p.want_percentile(req.percentile->first, req.percentile->second);
  }
  for (int k = 0; k < 3; ++k) p.observe(v1_batch(k));
  p.finalize();
  auto r = det->report(model, stats, kPyTorchAxis);
  const auto& ratios = field(r, "fc", "outlier_detection_percentile_ratios").list;
  REQUIRE(ratios.size() == 5);
  CHECK(ratios[0].f == doctest::Approx(1.1006733179092407));
  CHECK(ratios[1].f == 1.0);
  CHECK(ratios[2].type == Value::Type::Null);  // PyTorch: 1/0 = inf, flagged
  CHECK(ratios[3].f == 2.0);
  CHECK(ratios[4].f == double(3.4028234663852886e38f));
  std::vector<bool> flags;
  for (const auto& v : field(r, "fc", "outliers_detected").list) flags.push_back(v.b);
  CHECK(flags == std::vector<bool>{false, false, false, false, true});
  std::vector<bool> sufficient;
  for (const auto& v : field(r, "fc", "outlier_detection_is_sufficient_batches").list) sufficient.push_back(v.b);
  CHECK(sufficient == std::vector<bool>{true, true, false, true, true});
  const std::string constant =
      " constant value batches. We recommend taking a look at the dict and data to see how frequent this occurred "
      "and why.\n";
  CHECK(r.text == "Outlier detection report: \nFor Module fc looked at with axis 1: \n\tFor channel 1, we found 3" +
                      constant + "\tFor channel 2, we found 3" + constant +
                      "\tFor channel 4, we found outliers in the preceding activation data with a max value across "
                      "all batches of 150.0.\n" +
                      kNote);
}

TEST_CASE("dynamic vs static: drifting narrow batches recommend dynamic (oracle v3)") {
  auto model = model::Model::load(fixture("graph/never_called.pt"));
  auto det = make_dynamic_static({});
  FakeStats stats;
  for (Side side : {Side::Input, Side::Output}) {
    auto& p = stats.points[{"fc", side}];
    p.want_range();
    for (int k = 0; k < 4; ++k)
      p.observe(at::tensor({10.0f * k, 10.0f * k + 1, 10.0f * k + 0.5f, 10.0f * k + 0.25f}).reshape({1, 2, 2}));
    p.finalize();
  }
  auto r = det->report(model, stats, kPyTorchAxis);
  CHECK(field(r, "fc", "input_activation_dynamic_static_comp_stat").f == doctest::Approx(0.032258064).epsilon(1e-6));
  CHECK(field(r, "fc", "dynamic_recommended").b);
  CHECK(field(r, "fc", "is_dynamic_supported").b);
  CHECK(r.text ==
        "Dynamic vs. Static Quantization suggestions: \nFor module fc it is suggested to use dynamic quantization "
        "because the distribution of data before fc is non-stationary and the distribution after is non-stationary. "
        "You will get more accurate results if you use dynamic quantization.\n");
  REQUIRE(r.qconfig_info.size() == 1);
  CHECK(r.qconfig_info[0].is_activation_dynamic);
}

TEST_CASE("dynamic vs static: a zero epoch range gives null and a warning, not an exception") {
  auto model = model::Model::load(fixture("graph/never_called.pt"));
  auto det = make_dynamic_static({});
  FakeStats stats;
  for (Side side : {Side::Input, Side::Output}) {
    auto& p = stats.points[{"fc", side}];
    p.want_range();
    p.observe(at::zeros({2, 3}));
    p.finalize();
  }
  auto r = det->report(model, stats, kPyTorchAxis);
  CHECK(field(r, "fc", "input_activation_dynamic_static_comp_stat").type == Value::Type::Null);
  CHECK(field(r, "fc", "dynamic_recommended").type == Value::Type::Null);
  REQUIRE(r.warnings.size() == 2);
  CHECK(r.warnings[0] == "dynamic_vs_static_detector: S of the input of 'fc' is null: the epoch range is 0 (constant data)");
}

TEST_CASE("empty-model strings (oracle v3)") {
  auto model = model::Model::load(fixture("graph/embed.pt"));  // Embedding + Linear
  FakeStats none;
  PerChannelOptions pc;
  pc.backend = "fbgemm";
  auto r = make_per_channel(pc)->report(model, none, kPyTorchAxis);
  CHECK(r.text == "Further Optimizations for backend fbgemm: \nModule fc can be configured to use per_channel "
                  "quantization.\nTo use per_channel quantization, make sure the qconfig has a per_channel weight "
                  "observer.");
  pc.weight_per_channel = true;
  CHECK(make_per_channel(pc)->report(model, none, kPyTorchAxis).text ==
        "Further Optimizations for backend fbgemm: \nNo further per_channel optimizations possible.");
  CHECK(make_dynamic_static({})->report(model, none, kPyTorchAxis).text ==
        "Dynamic vs. Static Quantization suggestions: \nNo applicable layers for suggestions. Only linear and conv are "
        "valid.\n");
  CHECK(make_equalization({})->report(model, none, kPyTorchAxis).text ==
        "Input-Weight Equalization suggestions: \nNo applicable layers for suggestions. Only linear and conv valid.\n");
  CHECK(make_outlier({})->report(model, none, kPyTorchAxis).text ==
        "Outlier detection report: \nThere were no outliers found in the activations.\n");
}

TEST_CASE("detector options out of range are usage errors") {
  EqualizationOptions e;
  e.ratio_threshold = 1.0;
  CHECK_THROWS_WITH_AS(make_equalization(e), "--equalization-threshold must be > 0 and < 1", UsageError);
  OutlierOptions o;
  o.reference_percentile = 1.5;
  CHECK_THROWS_WITH_AS(make_outlier(o), "--outlier-reference-percentile must be in [0, 1]", UsageError);
  PerChannelOptions p;
  p.backend = "tpu";
  CHECK_THROWS_AS(make_per_channel(p), UsageError);
  CHECK(canonical_detector_name("outlier") == std::optional<std::string>("outlier_detector"));
  CHECK(canonical_detector_name("dynamic_vs_static_detector") == std::optional<std::string>("dynamic_vs_static_detector"));
  CHECK_FALSE(canonical_detector_name("bogus").has_value());
}

TEST_CASE("--ch-axis: auto, or an axis >= 0") {
  CHECK_FALSE(parse_ch_axis("auto").has_value());
  CHECK(parse_ch_axis("0") == std::optional<int>(0));
  CHECK(parse_ch_axis("2") == std::optional<int>(2));
  CHECK_THROWS_WITH_AS(parse_ch_axis("-1"), "--ch-axis must be auto or an axis >= 0 (got '-1')", UsageError);
  CHECK_THROWS_WITH_AS(parse_ch_axis("1x"), "--ch-axis must be auto or an axis >= 0 (got '1x')", UsageError);
  CHECK_THROWS_AS(parse_ch_axis(""), UsageError);
  CHECK(ChannelAxes::fixed_axis(2).of("any").input_axis == 2);
  CHECK(ChannelAxes::fixed_axis(2).of("any").weight_axis == 2);
}
