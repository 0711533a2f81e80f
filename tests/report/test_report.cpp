#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/version.h"
#include "report/json_text.h"
#include "report/json_value.h"
#include "report/saved_report.h"
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
    "libtorch": ")" + libtorch_version() + R"js("
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
  "pt2e": {
    "quantizer": "X86InductorQuantizer",
    "is_dynamic": false,
    "module_name_qconfig": {
      "fc": "static"
    },
    "not_expressed": [
      "per-tensor weights advised for fc: the config quantizes weights per channel (symmetric int8)",
      "MinMaxObserver activations advised for fc: the static config observes activations with HistogramObserver"
    ],
    "python": "# qreport PT2E settings (X86InductorQuantizer, torchao 0.18.0): static, 1 module quantized, 0 kept in float\n# Not expressed by the quantizer:\n# - per-tensor weights advised for fc: the config quantizes weights per channel (symmetric int8)\n# - MinMaxObserver activations advised for fc: the static config observes activations with HistogramObserver\nimport torch\nfrom torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e\nfrom torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (\n    X86InductorQuantizer,\n    get_default_x86_inductor_quantization_config,\n)\n\nconfig = get_default_x86_inductor_quantization_config(is_dynamic=False)\nquantizer = X86InductorQuantizer()\nfor name in [\"fc\"]:\n    quantizer.set_module_name_qconfig(name, config)\n\nprepared = prepare_pt2e(torch.export.export(model, example_inputs).module(), quantizer)\nfor batch in calibration_batches:\n    prepared(*batch)\nquantized = convert_pt2e(prepared)\n"
  },
  "warnings": [
    "w"
  ]
}
)js";  // js: the pt2e lines hold )"
  CHECK(j == expected);
}

TEST_CASE("saved reports read back what the JSON writer wrote") {
  // The reader's view of the writer's bytes: the same detector, options, text and values, with the
  // non-finite ratio as the null it was written as.
  const report::SavedReport s = report::read_saved_report(report::to_json(small_report()), "r.json");
  CHECK(s.name == "r.json");
  CHECK(s.report.model_path == "m.pt");
  CHECK(s.report.model_sha256 == "00");
  REQUIRE(s.report.results.size() == 1);
  const auto& d = s.report.results[0];
  CHECK(d.name == "outlier_detector");
  CHECK(d.text == "t");
  REQUIRE(d.options.size() == 1);
  CHECK(d.options[0].first == "ch_axis");
  CHECK(d.options[0].second.type == detectors::Value::Type::Int);
  CHECK(d.options[0].second.i == 1);
  REQUIRE(d.modules.size() == 1);
  CHECK(d.modules[0].fqn == "fc");
  const auto* ratios = detectors::find_field(d.modules[0].fields, "ratios");
  REQUIRE(ratios);
  REQUIRE(ratios->list.size() == 2);
  CHECK(ratios->list[0].f == 1.5);
  CHECK(ratios->list[1].type == detectors::Value::Type::Null);
  const auto* flags = detectors::find_field(d.modules[0].fields, "flags");
  REQUIRE(flags);
  REQUIRE(flags->list.size() == 2);
  CHECK(flags->list[0].b);
  CHECK(!flags->list[1].b);
  CHECK(s.settings == std::vector<std::pair<std::string, std::string>>{
                          {"calibration.batches", "1"}, {"calibration.device", "\"cpu\""},
                          {"outlier_detector.ch_axis", "1"}});
  CHECK(!s.report.simulation.ran);
}

TEST_CASE("saved report JSON: nesting bounded at kMaxJsonDepth, paths that name the place") {
  using report::parse_json_value;
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  CHECK(parse_json_value(nested(report::kMaxJsonDepth), "f").type == detectors::Value::Type::List);
  CHECK_THROWS_WITH_AS(parse_json_value(nested(report::kMaxJsonDepth + 1), "f"),
                       ("f: $" + [] {
                         std::string p;
                         for (size_t i = 0; i < report::kMaxJsonDepth; ++i) p += "[0]";
                         return p;
                       }() + ": nested deeper than 64 levels").c_str(),
                       InputError);
  CHECK_THROWS_WITH_AS(parse_json_value(R"({"a": {"b.c": [1, {"d": 2, "d": 3}]}})", "f"),
                       R"(f: $.a["b.c"][1]: the key "d" appears twice)", InputError);
  CHECK_THROWS_WITH_AS(parse_json_value("[1,", "f"), doctest::Contains("f is not valid JSON: "), InputError);
  // Integers beyond int64 are numbers, not wrapped; objects keep their order.
  auto v = parse_json_value(R"({"z": 18446744073709551615, "a": -9223372036854775808})", "f");
  REQUIRE(v.members.size() == 2);
  CHECK(v.members[0].first == "z");
  CHECK(v.members[0].second.type == detectors::Value::Type::Float);
  CHECK(v.members[0].second.f == 18446744073709551615.0);
  CHECK(v.members[1].second.type == detectors::Value::Type::Int);
  CHECK(v.members[1].second.i == INT64_MIN);
  CHECK(report::json_text(v) == R"({"z":1.8446744073709552e+19,"a":-9223372036854775808})");
  const std::string k1 = "modules", k2 = "conv2.0", k3 = "say \"hi\"";
  report::JsonPath root;
  CHECK(root.str() == "$");
  CHECK(root.member(k1).member(k2).element(3).member(k3).str() == R"($.modules["conv2.0"][3]["say \"hi\""])");
}

TEST_CASE("SQNR figures are the dB keys that name an SQNR, never a gain") {
  for (const char* k : {"sqnr_db", "weight_sqnr_per_tensor_db", "weight_sqnr_per_channel_db", "input_sqnr_minmax_db",
                        "input_sqnr_histogram_db", "output_sqnr_db", "layers_output_sqnr_db", "local_output_sqnr_db"})
    CHECK(report::is_sqnr_key(k));
  for (const char* k : {"weight_per_channel_gain_db", "input_histogram_gain_db", "histogram_min_gain_db",
                        "sqnr_limited_by", "sqnr", "input_histogram_min"})
    CHECK(!report::is_sqnr_key(k));
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
  // Every finding is on the page, with its module and its detail.
  for (const auto& f : report::findings(r)) {
    CHECK(h.find("<code>" + f.fqn + "</code>") != std::string::npos);
    CHECK(h.find(f.detail) != std::string::npos);
  }
  CHECK(h.find("outliers in channel(s) 2") != std::string::npos);
}

// A page declared UTF-8 must be UTF-8, and HTML allows no C0 control character but tab, newline and
// carriage return, raw or as a reference: a Linux path or module name may hold any byte.
TEST_CASE("HTML escaping keeps the page valid UTF-8 whatever bytes a name holds") {
  CHECK(report::svg::escape("a<b>&\"c\"") == "a&lt;b&gt;&amp;&quot;c&quot;");
  CHECK(report::svg::escape("caf\xc3\xa9 \xe2\x82\xac") == "caf\xc3\xa9 \xe2\x82\xac");  // UTF-8 as it is
  CHECK(report::svg::escape("ctl\x01" "ff") == "ctl&#x2401;ff");                            // SOH's symbol
  CHECK(report::svg::escape("del\x7f") == "del&#x2421;");
  CHECK(report::svg::escape("t\tn\nr\r") == "t\tn\nr\r");
  CHECK(report::svg::escape("x\xffy\xc3") == "x&#xFFFD;y&#xFFFD;");                    // not UTF-8, cut sequence
  CHECK(report::svg::escape("\xed\xa0\x80") == "&#xFFFD;&#xFFFD;&#xFFFD;");            // a surrogate's bytes
  report::Report r = findings_report();
  r.model_path = std::string("/data/m\xff\x01.pt");
  const std::string h = report::to_html(r);
  for (size_t i = 0; i < h.size();) {
    const auto c = static_cast<unsigned char>(h[i]);
    INFO("byte ", i);
    if (c >= 0x80) {
      const size_t n = report::utf8_length(h, i);
      REQUIRE(n > 0);
      i += n;
    } else {
      REQUIRE((c >= 0x20 || c == '\t' || c == '\n' || c == '\r'));
      REQUIRE(c != 0x7f);
      ++i;
    }
  }
  CHECK(h.find("/data/m&#xFFFD;&#x2401;.pt") != std::string::npos);
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
