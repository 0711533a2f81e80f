#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/version.h"
#include "report/json_text.h"
#include "report/report.h"
#include "report/svg.h"
#include "test_support.h"

using namespace qreport;

namespace {

report::Report small_report() {
  report::Report r;
  r.model_path = "m.pt";
  r.model_sha256 = "00";
  r.model_modules = 2;
  r.calib_path = "c.pt";
  r.batches = 1;
  r.device = "cpu";
  detectors::DetectorResult d;
  d.name = "outlier_detector";
  d.options = {{"ch_axis", detectors::Value::integer(1)}};
  d.text = "t";
  d.modules.push_back({"fc", {{"ratios", detectors::float_list({1.5f, INFINITY})},
                              {"flags", detectors::bool_list({true, false})}}});
  r.results.push_back(d);
  r.qconfig.push_back({"fc", "default_observer", "default_weight_observer", false});
  r.warnings.push_back("w");
  return r;
}

}  // namespace

TEST_CASE("JSON report: schema v1 shape, non-finite numbers as null, stable bytes") {
  std::string j = report::to_json(small_report());
  std::string expected = R"({
  "schema_version": 1,
  "tool": {
    "name": "qreport",
    "version": ")" QREPORT_VERSION R"(",
    "libtorch": ")" + libtorch_version() + R"("
  },
  "model": {
    "path": "m.pt",
    "sha256": "00",
    "modules": 2
  },
  "calibration": {
    "path": "c.pt",
    "batches": 1,
    "device": "cpu"
  },
  "detectors": {
    "outlier_detector": {
      "options": {
        "ch_axis": 1
      },
      "report": "t",
      "modules": {
        "fc": {
          "ratios": [1.5, null],
          "flags": [true, false]
        }
      }
    }
  },
  "qconfig_mapping": {
    "fc": {
      "activation": "default_observer",
      "weight": "default_weight_observer"
    }
  },
  "equalization_mapping": {
    "fc": {
      "input_activation": "_InputEqualizationObserver",
      "weight": "_WeightEqualizationObserver",
      "equalization_recommended": false
    }
  },
  "warnings": [
    "w"
  ]
}
)";
  CHECK(j == expected);
  CHECK(report::to_json(small_report()) == j);
}

TEST_CASE("JSON text: dump(2)'s layout, with arrays of scalars on one line") {
  CHECK(report::indent_json(R"({"a":[1,2.5,null,true],"b":{"c":[],"d":{}},"e":[{"f":"x,y:[z]"}],"g":["s","t"]})") ==
        R"({
  "a": [1, 2.5, null, true],
  "b": {
    "c": [],
    "d": {}
  },
  "e": [
    {
      "f": "x,y:[z]"
    }
  ],
  "g": [
    "s",
    "t"
  ]
})");
  // Commas, colons and brackets inside strings (and escaped quotes) are text, not structure.
  CHECK(report::indent_json(R"(["a\"],[{","b"])") == R"([
  "a\"],[{",
  "b"
])");
}

TEST_CASE("JSON strings with bytes that are not UTF-8 (Linux paths) are escaped losslessly") {
  using report::indent_json;
  using report::json_bytes;
  CHECK(json_bytes("caf\xc3\xa9/m.pt") == "caf\xc3\xa9/m.pt");  // valid UTF-8 unchanged
  nlohmann::json j = json_bytes("a\xff\x01" "b\xc3");
  CHECK(indent_json(j.dump()) == R"("a\udcff\u0001b\udcc3")");
  CHECK(indent_json(nlohmann::json(json_bytes("\xed\xa0\x80")).dump()) == R"("\udced\udca0\udc80")");  // a surrogate
}

TEST_CASE("text report: one section per detector, then warnings") {
  std::string t = report::to_text(small_report());
  CHECK(t.find("== outlier_detector ==\nt\n") != std::string::npos);
  CHECK(t.find("== warnings ==\n- w\n") != std::string::npos);
}

namespace {

report::Report findings_report() {
  using detectors::Value;
  report::Report r = small_report();
  r.results.clear();
  detectors::DetectorResult pc{"per_channel_detector", {}, "", {}, {}, {}};
  pc.modules.push_back({"a", {{"per_channel_quantization_supported", Value::boolean(true)},
                              {"per_channel_quantization_used", Value::boolean(false)}}});
  pc.modules.push_back({"b", {{"per_channel_quantization_supported", Value::boolean(true)},
                              {"per_channel_quantization_used", Value::boolean(true)}}});
  detectors::DetectorResult ds{"dynamic_vs_static_detector", {}, "", {}, {}, {}};
  ds.modules.push_back({"a", {{"dynamic_recommended", Value::boolean(true)}}});
  ds.modules.push_back({"b", {{"dynamic_recommended", Value::null()}}});
  detectors::DetectorResult eq{"input_weight_equalization_detector", {}, "", {}, {}, {}};
  eq.modules.push_back({"a", {{"input_weight_equalization_recommended", detectors::bool_list({false, false})}}});
  detectors::DetectorResult od{"outlier_detector", {}, "", {}, {}, {}};
  // Channel 1 flagged from too few batches: not a finding (the gate counts what is sufficiently seen).
  od.modules.push_back({"b", {{"outliers_detected", detectors::bool_list({false, true, true})},
                              {"outlier_detection_is_sufficient_batches", detectors::bool_list({true, false, true})}}});
  r.results = {pc, ds, eq, od};
  return r;
}

}  // namespace

TEST_CASE("findings: what each detector recommends acting on, in detector then module order") {
  auto f = report::findings(findings_report());
  REQUIRE(f.size() == 3);
  CHECK(f[0].kind == "per_channel");
  CHECK(f[0].fqn == "a");
  CHECK(f[1].kind == "dynamic");
  CHECK(f[1].fqn == "a");
  CHECK(f[2].kind == "outliers");
  CHECK(f[2].detail == "outliers in channel(s) 2");
}

TEST_CASE("tables from a saved JSON report: scalars per module, lists per channel, filters") {
  std::string j = report::to_json(small_report());
  CHECK(report::tables_from_json(j, "", "") ==
        "Tensor-level information (0 rows)\n(no rows match)\n\n"
        "Channel-level information (2 rows)\n"
        "idx  layer_fqn  channel  ratios  flags\n"
        "--------------------------------------\n"
        "0    fc         0        1.5     True\n"
        "1    fc         1        null    False\n");
  CHECK(report::tables_from_json(j, "nomatch", "").find("Channel-level information (0 rows)") != std::string::npos);
  CHECK_THROWS_AS(report::tables_from_json("{\"a\": 1}", "", ""), InputError);
  CHECK_THROWS_WITH(report::tables_from_json("[1,", "", ""), doctest::Contains("not valid JSON"));
}

TEST_CASE("HTML report: self-contained, escaped, a section per detector") {
  report::Report r = findings_report();
  r.model_path = "<m>&.pt";
  std::string h = report::to_html(r);
  CHECK(h.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(h.find("<script") == std::string::npos);
  CHECK(h.find("&lt;m&gt;&amp;.pt") != std::string::npos);
  CHECK(h.find("<m>") == std::string::npos);
  for (const char* id : {"per_channel_detector", "dynamic_vs_static_detector", "input_weight_equalization_detector",
                         "outlier_detector", "findings"})
    CHECK(h.find(std::string("id=\"") + id + "\"") != std::string::npos);
  CHECK(h == report::to_html(r));  // deterministic
}

TEST_CASE("sparse channels: a ratio saturated by max / 0 in some batch, and nothing else") {
  const double flt_max = std::numeric_limits<float>::max();
  CHECK(detectors::is_sparse_channel(flt_max, 1));
  CHECK(detectors::is_sparse_channel(flt_max / 2, 2));         // one batch of two had percentile 0
  CHECK(detectors::is_sparse_channel(flt_max / 1000, 1000));   // one of a thousand
  CHECK(detectors::is_sparse_channel(INFINITY, 3));
  CHECK_FALSE(detectors::is_sparse_channel(1e30, 2));          // huge, but a real ratio
  CHECK_FALSE(detectors::is_sparse_channel(flt_max, 0));       // never usable: no ratio at all
  CHECK_FALSE(detectors::is_sparse_channel(NAN, 2));
}

TEST_CASE("outlier findings count finite ratios above the threshold; sparse channels are notes") {
  report::Report r;
  detectors::DetectorResult d;
  d.name = "outlier_detector";
  const float big = std::numeric_limits<float>::max();
  d.modules.push_back({"conv", {{"outlier_detection_percentile_ratios", detectors::float_list({5.0f, big, 1.2f, big / 2})},
                                {"outlier_detection_batches_used", detectors::int_list({2, 2, 2, 2})},
                                {"outliers_detected", detectors::bool_list({true, true, false, true})},
                                {"outlier_detection_is_sufficient_batches", detectors::bool_list({true, true, true, true})},
                                {"input_activation_per_channel_max", detectors::float_list({9.0f, 0.25f, 1.0f, 3.0f})}}});
  d.modules.push_back({"relu", {{"outlier_detection_percentile_ratios", detectors::float_list({big})},
                                {"outlier_detection_batches_used", detectors::int_list({1})},
                                {"outliers_detected", detectors::bool_list({true})},
                                {"outlier_detection_is_sufficient_batches", detectors::bool_list({true})},
                                {"input_activation_per_channel_max", detectors::float_list({0.5f})}}});
  r.results.push_back(d);
  auto f = report::findings(r);
  REQUIRE(f.size() == 1);
  CHECK(f[0].fqn == "conv");
  CHECK(f[0].detail == "outliers in channel(s) 0");
  auto n = report::notes(r);
  REQUIRE(n.size() == 2);
  CHECK(n[0].kind == "sparse");
  CHECK(n[0].detail == "sparse channels 1 (max 0.25), 3 (max 3): reference percentile 0, so the max / percentile ratio "
                       "is not an outlier measure (not gated)");
  CHECK(n[1].detail == "sparse channel 0 (max 0.5): reference percentile 0, so the max / percentile ratio is not an "
                       "outlier measure (not gated)");
  // The gate cannot evaluate what no module was judged on; here the outlier detector judged two.
  CHECK(report::unevaluated_gates(r, {"outliers"}).empty());
  r.results[0].modules.clear();
  r.results[0].warnings.push_back("outlier_detector: 'conv' skipped: a 2-d tensor has no channel axis 7");
  CHECK(report::unevaluated_gates(r, {"outliers"}) ==
        "--fail-on outliers cannot be evaluated: outlier_detector judged no module ('conv' skipped: a 2-d tensor has "
        "no channel axis 7)");
  CHECK(report::unevaluated_gates(r, {"dynamic"}) ==
        "--fail-on dynamic cannot be evaluated: the report has no dynamic_vs_static_detector");
}

TEST_CASE("bar chart: an infinite value is a marker at the top written inf, and never scales the axis") {
  report::svg::BarChart ch;
  ch.title = "t";
  ch.log_scale = true;
  ch.threshold = 3.5;
  ch.values = {2.0, INFINITY, 40.0};
  ch.labels = {"ch 0", "ch 1", "ch 2"};
  ch.x_label = "channels";
  ch.inf_note = "reference percentile 0";
  const std::string s = report::svg::bar_chart(ch);
  CHECK(s.find("class=\"inf\"><title>ch 1: inf (reference percentile 0)</title>") != std::string::npos);
  CHECK(s.find(">inf</text>") != std::string::npos);  // 3 bars: room to write it
  CHECK(s.find("inf: 1 channels, reference percentile 0</text>") != std::string::npos);
  CHECK(s.find("class=\"tk\">100</text>") != std::string::npos);  // the axis ends at 100, above 40
  CHECK(s.find("class=\"tk\">1000</text>") == std::string::npos);
  CHECK(s.find("e+") == std::string::npos);
}
