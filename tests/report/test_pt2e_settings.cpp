// The report's "pt2e" settings (lib/report/pt2e_report.cpp) against the rules of docs/python.md, "PT2E",
// case by case; tests/report/test_pt2e.py runs the emitted snippet through torchao itself.
#include <doctest/doctest.h>

#include "report/report.h"

using namespace qreport;
using Entry = detectors::QConfigEntry;

namespace {

Entry entry(const std::string& fqn, bool dynamic, bool per_channel = true, Entry::Pt2e reach = Entry::Pt2e::Named) {
  Entry e{fqn, dynamic ? "default_dynamic_quant_observer" : "default_histogram_observer",
          per_channel ? "default_per_channel_weight_observer" : "default_weight_observer", false};
  e.pt2e = reach;
  return e;
}

std::vector<std::pair<std::string, bool>> modules(const report::Pt2eSettings& s) {
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& m : s.modules) out.emplace_back(m.name, m.quantized);
  return out;
}

using Modules = std::vector<std::pair<std::string, bool>>;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("pt2e: one static quantizer keeps the layers advised dynamic in float, and says so") {
  report::Report r;
  r.qconfig = {entry("conv1", false), entry("fc1", true, false), entry("fc2", false)};
  const auto s = report::pt2e_settings(r);
  CHECK_FALSE(s.is_dynamic);
  CHECK(modules(s) == Modules{{"conv1", true}, {"fc1", false}, {"fc2", true}});
  REQUIRE(s.not_expressed.size() == 1);  // fc1's per-tensor weight is moot: fc1 stays in float
  CHECK(contains(s.not_expressed[0], "dynamic activations advised for fc1:"));
  const std::string py = report::pt2e_python(s);
  CHECK(contains(py, "config = get_default_x86_inductor_quantization_config(is_dynamic=False)\n"));
  CHECK(contains(py, "for name in [\"conv1\", \"fc2\"]:\n    quantizer.set_module_name_qconfig(name, config)\n"));
  CHECK(contains(py, "for name in [\"fc1\"]:  # in float, also under a set_global config\n"
                     "    quantizer.set_module_name_qconfig(name, None)\n"));
  CHECK(contains(py, "# - dynamic activations advised for fc1:"));
  CHECK(py == report::pt2e_python(report::pt2e_settings(r)));  // deterministic
}

TEST_CASE("pt2e: every layer advised dynamic makes the quantizer dynamic; what it cannot carry is listed") {
  report::Report r;
  r.qconfig = {entry("fc1", true, false), entry("fc2", true)};
  r.qconfig[1].equalization_recommended = true;
  const auto s = report::pt2e_settings(r);
  CHECK(s.is_dynamic);
  CHECK(modules(s) == Modules{{"fc1", true}, {"fc2", true}});
  REQUIRE(s.not_expressed.size() == 2);
  CHECK(contains(s.not_expressed[0], "per-tensor weights advised for fc1:"));
  CHECK(contains(s.not_expressed[1], "input-weight equalization advised for fc2:"));
  CHECK(contains(report::pt2e_python(s), "is_dynamic=True)"));
  CHECK_FALSE(contains(report::pt2e_python(s), "None)"));
}

TEST_CASE("pt2e: an int8-static plan's kept layers are None, a MinMaxObserver entry is listed") {
  report::Report r;
  r.qconfig = {entry("conv1", false), entry("conv2", false), entry("fc", true)};
  r.qconfig[0].activation = "default_observer";
  r.plan.ran = true;
  r.plan.scheme = "int8-static";
  r.plan.keep_float = {"conv2"};
  const auto s = report::pt2e_settings(r);
  CHECK_FALSE(s.is_dynamic);
  CHECK(modules(s) == Modules{{"conv1", true}, {"conv2", false}, {"fc", false}});
  REQUIRE(s.not_expressed.size() == 2);
  CHECK(contains(s.not_expressed[0], "dynamic activations advised for fc:"));
  CHECK(contains(s.not_expressed[1], "MinMaxObserver activations advised for conv1:"));
}

TEST_CASE("pt2e: an int8-dynamic plan sets its layers dynamic; MultiheadAttention projections are not named") {
  report::Report r;
  r.qconfig = {entry("conv1", false), entry("attn.in_proj", false, true, Entry::Pt2e::Skipped),
               entry("attn.out_proj", false, true, Entry::Pt2e::Unreachable), entry("fc1", false), entry("fc2", false)};
  r.sensitivity.ran = true;
  r.sensitivity.layers = {{"attn.in_proj", {}, {}}, {"attn.out_proj", {}, {}}, {"fc1", {}, {}}, {"fc2", {}, {}}};
  r.plan.ran = true;
  r.plan.scheme = "int8-dynamic";
  r.plan.keep_float = {"fc2"};
  const auto s = report::pt2e_settings(r);
  CHECK(s.is_dynamic);
  CHECK(modules(s) == Modules{{"fc1", true}, {"fc2", false}});  // conv1: not a layer of the plan
  REQUIRE(s.not_expressed.size() == 1);
  CHECK(contains(s.not_expressed[0], "MultiheadAttention projections attn.out_proj (and their in-projections)"));
  CHECK_FALSE(contains(s.not_expressed[0], "attn.in_proj"));  // the .pt2 pseudo-module: the .pt report has none
}

TEST_CASE("pt2e: a plan under a scheme the quantizer lacks is not applied, and says so") {
  report::Report r;
  r.qconfig = {entry("fc1", false), entry("fc2", false)};
  r.plan.ran = true;
  r.plan.scheme = "int4-weight-only-g32";
  r.plan.keep_float = {"fc2"};
  const auto s = report::pt2e_settings(r);
  CHECK(modules(s) == Modules{{"fc1", true}, {"fc2", true}});
  REQUIRE(s.not_expressed.size() == 1);
  CHECK(contains(s.not_expressed[0], "the plan under int4-weight-only-g32:"));
}

TEST_CASE("pt2e: a layer the quantizer has no annotator for is listed, or None where kept in float") {
  report::Report r;
  r.qconfig = {entry("c1d", false, true, Entry::Pt2e::NoAnnotator), entry("c3d", false, true, Entry::Pt2e::NoAnnotator),
               entry("c3d_dyn", true, true, Entry::Pt2e::NoAnnotator), entry("conv", false), entry("fc", true)};
  r.plan.ran = true;
  r.plan.scheme = "int8-static";
  r.plan.keep_float = {"c3d"};
  const auto s = report::pt2e_settings(r);
  CHECK_FALSE(s.is_dynamic);
  // c1d would be quantized but cannot be by name: not set; c3d kept by the plan and c3d_dyn advised
  // dynamic under a static quantizer: None all the same, so that a set_global config leaves them alone.
  CHECK(modules(s) == Modules{{"c3d", false}, {"c3d_dyn", false}, {"conv", true}, {"fc", false}});
  REQUIRE(s.not_expressed.size() == 2);
  CHECK(contains(s.not_expressed[0], "dynamic activations advised for c3d_dyn, fc:"));
  CHECK(contains(s.not_expressed[1], "no annotator for c1d: X86InductorQuantizer"));
}

TEST_CASE("pt2e: only layers the quantizer reaches by name decide static or dynamic") {
  report::Report r;
  // A static Conv3d it cannot quantize does not make the quantizer static for the dynamic Linear layers.
  r.qconfig = {entry("c3d", false, true, Entry::Pt2e::NoAnnotator), entry("fc1", true), entry("fc2", true)};
  const auto s = report::pt2e_settings(r);
  CHECK(s.is_dynamic);
  CHECK(modules(s) == Modules{{"fc1", true}, {"fc2", true}});
  REQUIRE(s.not_expressed.size() == 1);
  CHECK(contains(s.not_expressed[0], "no annotator for c3d: X86InductorQuantizer"));
}

TEST_CASE("pt2e: the snippet stays valid Python whatever a ModuleDict key holds") {
  report::Report r;
  r.qconfig = {entry("d.a\"b\\c", false), entry("d.x\ny", true, false)};
  const std::string py = report::pt2e_python(report::pt2e_settings(r));
  CHECK(contains(py, "for name in [\"d.a\\\"b\\\\c\"]:\n"));
  CHECK(contains(py, "for name in [\"d.x\\x0ay\"]:  # in float"));
  CHECK(contains(py, "# - dynamic activations advised for d.x y:"));  // the comment stays one line
}
