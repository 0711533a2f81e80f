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
    "libtorch": ")" + report::libtorch_version() + R"("
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
          "ratios": [
            1.5,
            null
          ],
          "flags": [
            true,
            false
          ]
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

TEST_CASE("text report: one section per detector, then warnings") {
  std::string t = report::to_text(small_report());
  CHECK(t.find("== outlier_detector ==\nt\n") != std::string::npos);
  CHECK(t.find("== warnings ==\n- w\n") != std::string::npos);
}
