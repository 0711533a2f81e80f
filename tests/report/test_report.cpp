#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/version.h"
#include "report/json_text.h"
#include "report/report.h"
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
