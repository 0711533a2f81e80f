// JsonWriter against its oracle: nlohmann's document of the same value, dumped and re-indented by
// indent_json (what the JSON report was before the writer, and what `qreport diff` still writes).
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "report/json_text.h"
#include "report/json_value.h"
#include "report/json_writer.h"
#include "report/saved_report.h"
#include "common/errors.h"
#include "report/report.h"
#include "test_support.h"

using namespace qreport;
using ojson = nlohmann::ordered_json;
using detectors::Value;

namespace {

ojson oracle_value(const Value& v) {
  using T = Value::Type;
  switch (v.type) {
    case T::Null: return nullptr;
    case T::Bool: return v.b;
    case T::Int: return v.i;
    case T::Float: return std::isfinite(v.f) ? ojson(v.f) : ojson(nullptr);
    case T::String: return v.s;
    case T::List: {
      ojson a = ojson::array();
      for (const auto& x : v.list) a.push_back(oracle_value(x));
      return a;
    }
    case T::Object: {
      ojson o = ojson::object();
      for (const auto& [k, x] : v.members) o[k] = oracle_value(x);
      return o;
    }
  }
  return nullptr;
}

std::string written(const Value& v) {
  std::string out;
  report::JsonWriter w(out);
  report::write_value(w, v);
  return out;
}

std::string oracle(const Value& v) { return report::indent_json(oracle_value(v).dump()); }

// Numbers at the edges of nlohmann's formats: integral doubles (".0"), exponents on both sides of its
// thresholds, signed zero, subnormals, the extremes of int64, and non-finite values (null).
const double kDoubles[] = {0.0, -0.0, 1.0, -3.0, 0.1, 1.0 / 3.0, 1e-4, 1e-5, 123456789012345.0, 1e15, 1e16,
                           1e17, 1.7976931348623157e308, 4.9e-324, 2.2250738585072014e-308, -2.5e-7,
                           std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity(), 26.157215118408203, 3.4028234663852886e38};
const int64_t kInts[] = {0, -1, 7, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
// Valid UTF-8 only (nlohmann's dump throws on the rest): quotes, backslashes, every escape, other control
// characters, DEL, multi-byte characters.
const char* kStrings[] = {"", "fc", "a\"b", "back\\slash", "\b\f\n\r\t", "\x02\x1f", "del\x7f",
                          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "features.0.conv.1", "{[,:]}"};

Value random_value(std::mt19937& rng, int depth) {
  const int kind = static_cast<int>(rng() % (depth > 3 ? 5u : 8u));
  switch (kind) {
    case 0: return Value::null();
    case 1: return Value::boolean(rng() % 2);
    case 2: return Value::integer(kInts[rng() % std::size(kInts)]);
    case 3: return Value::number(kDoubles[rng() % std::size(kDoubles)]);
    case 4: return Value::string(kStrings[rng() % std::size(kStrings)]);
    case 5:
    case 6: {  // lists: often of one kind (the report's per-channel lists), sometimes mixed or empty
      Value l;
      l.type = Value::Type::List;
      const size_t n = rng() % 5;
      const bool same = rng() % 2;
      const Value first = random_value(rng, depth + 1);
      for (size_t i = 0; i < n; ++i) l.list.push_back(same && first.type <= Value::Type::Float ? first : random_value(rng, depth + 1));
      return l;
    }
    default: {
      std::vector<std::pair<std::string, Value>> m;
      const size_t n = rng() % 4;
      for (size_t i = 0; i < n; ++i) m.emplace_back("k" + std::to_string(i) + kStrings[rng() % std::size(kStrings)], random_value(rng, depth + 1));
      return Value::object(std::move(m));
    }
  }
}

}  // namespace

TEST_CASE("JsonWriter writes what nlohmann's dump, re-indented, writes: scalars") {
  for (double d : kDoubles) CHECK(written(Value::number(d)) == oracle(Value::number(d)));
  for (int64_t i : kInts) CHECK(written(Value::integer(i)) == oracle(Value::integer(i)));
  for (const char* s : kStrings) CHECK(written(Value::string(s)) == oracle(Value::string(s)));
  CHECK(written(Value::null()) == "null");
  CHECK(written(Value::boolean(true)) == "true");
  CHECK(written(Value::number(1e16)) == "1e+16");
  CHECK(written(Value::number(-0.0)) == "-0.0");
  CHECK(written(Value::number(std::nan(""))) == "null");
}

TEST_CASE("JsonWriter writes what nlohmann's dump, re-indented, writes: layouts") {
  // Empty containers, one-line lists of scalars, a line per string, object or list, and the layout of a
  // mixed list decided by its first member (as indent_json decides it).
  Value empty_list;
  empty_list.type = Value::Type::List;
  Value scalars = Value::list_of(std::vector<double>{1.5, INFINITY, -2.0}, [](double d) { return Value::number(d); });
  Value strings = Value::list_of(std::vector<std::string>{"a", "b"}, [](const std::string& s) { return Value::string(s); });
  Value mixed_scalar_first;
  mixed_scalar_first.type = Value::Type::List;
  mixed_scalar_first.list = {Value::integer(1), Value::object({{"x", scalars}}), Value::string("s"), empty_list};
  Value mixed_string_first;
  mixed_string_first.type = Value::Type::List;
  mixed_string_first.list = {Value::string("s"), Value::integer(1), empty_list, Value::object({})};
  Value nested;
  nested.type = Value::Type::List;
  nested.list = {scalars, empty_list, strings};
  const Value doc = Value::object({{"empty_list", empty_list},
                                   {"empty_object", Value::object({})},
                                   {"scalars", scalars},
                                   {"strings", strings},
                                   {"mixed1", mixed_scalar_first},
                                   {"mixed2", mixed_string_first},
                                   {"nested", nested},
                                   {"deep", Value::object({{"a", Value::object({{"b", nested}})}})}});
  CHECK(written(doc) == oracle(doc));
  CHECK(written(scalars) == "[1.5, null, -2.0]");
  CHECK(written(Value::object({{"k", strings}})) == "{\n  \"k\": [\n    \"a\",\n    \"b\"\n  ]\n}");
}

TEST_CASE("JsonWriter writes what nlohmann's dump, re-indented, writes: 2000 random documents") {
  std::mt19937 rng(20261208);
  for (int i = 0; i < 2000; ++i) {
    const Value v = random_value(rng, 0);
    const std::string w = written(v), o = oracle(v);
    CHECK(w == o);
    if (w != o) break;
  }
}

TEST_CASE("JsonWriter strings: bytes that are not UTF-8 as \\udcXX, as json_bytes gave a path; 0x01 as \\u0001") {
  // A path's bytes come out as json_bytes() and indent_json wrote them; every other string the same way
  // (nlohmann's dump threw on those bytes). A string's own 0x01 before two hex digits is not a mark: it
  // stays \u0001, where indent_json turned "name\x01ff" into "name\udcff", another name.
  const std::string path = std::string("dir/\xff\xfe") + "\x01" + "/m\xc3\xa9.pt";
  CHECK(written(Value::string(path)) == report::indent_json(ojson(report::json_bytes(path)).dump()));
  CHECK(written(Value::string(path)) == "\"dir/\\udcff\\udcfe\\u0001/m\xc3\xa9.pt\"");
  CHECK(written(Value::string("\xc3")) == "\"\\udcc3\"");  // a sequence cut short
  CHECK(written(Value::string("\xed\xa0\x80")) == "\"\\udced\\udca0\\udc80\"");  // a surrogate's encoding
  CHECK(written(Value::string("ctl\x01" "ff")) == "\"ctl\\u0001ff\"");
  CHECK(written(Value::string("a\x01" "01")) == "\"a\\u000101\"");
  CHECK(written(Value::string("end\x01")) == "\"end\\u0001\"");
}

TEST_CASE("a module name holding 0x01 and two hex digits keeps its name in the JSON report") {
  report::Report r;
  r.model_path = "m\x01" "ab.pt";
  detectors::DetectorResult d;
  d.name = "outlier_detector";
  d.modules.push_back({"ctl\x01" "ff", {{"x", Value::integer(1)}}});
  r.results.push_back(d);
  const ojson parsed = ojson::parse(report::to_json(r));
  CHECK(parsed["detectors"]["outlier_detector"]["modules"].contains("ctl\x01" "ff"));
  CHECK(parsed["model"]["path"] == "m\x01" "ab.pt");
}

TEST_CASE("the JSON report reads back as the document it came from, byte for byte") {
  // Every section the writer has (simulation, sensitivity, plan included), through nlohmann's parser
  // and dump: the same bytes as before the writer.
  report::Report r;
  r.model_path = "m.pt";
  r.model_sha256 = "ab";
  r.model_modules = 3;
  r.calib_path = "c.pt";
  r.batches = 2;
  r.device = "cpu";
  detectors::DetectorResult d;
  d.name = "quantization_error_detector";
  d.options = {{"activation_quant_max", Value::integer(127)}};
  d.text = "line 1\nline \"2\"";
  d.modules.push_back({"fc", {{"sqnr_db", Value::number(31.25)}, {"flags", detectors::bool_list({true})}}});
  d.modules.push_back({"conv", {}});
  d.summary = {{"worst_layers", Value::list_of(std::vector<std::string>{"fc"}, [](const std::string& s) { return Value::string(s); })}};
  r.results.push_back(d);
  r.qconfig.push_back({"fc", "default_histogram_observer", "default_per_channel_weight_observer", true});
  r.simulation.ran = true;
  r.simulation.configs.push_back({"default_qconfig", 20.5, {{"fc", 22.0}, {"conv", std::nullopt}}});
  r.sensitivity.ran = true;
  r.sensitivity.scheme = "int8-static";
  r.sensitivity.batches = 4;
  r.sensitivity.all_quantized_db = 19.0;
  r.sensitivity.layers = {{"fc", 30.0, std::nullopt}};
  r.sensitivity.forwards = 3;
  r.plan.ran = true;
  r.plan.scheme = "int8-static";
  r.plan.keep_as = "float";
  r.plan.target_sqnr_db = 25.0;
  r.plan.keep_float = {"fc"};
  r.plan.curve = {{0, "", 19.0}, {1, "fc", 26.0}};
  r.plan.achieved_output_sqnr_db = 26.0;
  r.plan.quantized_weight_fraction = 0.75;
  r.plan.note = "n";
  r.warnings = {"w1", "w2"};
  const std::string j = report::to_json(r);
  CHECK(j == report::indent_json(ojson::parse(j).dump()) + "\n");
  const ojson parsed = ojson::parse(j);
  CHECK(parsed["plan"]["curve"][1]["added"] == "fc");
  CHECK(parsed["plan"]["curve"][0]["added"].is_null());
  CHECK(parsed["simulation"]["default_qconfig"]["layers_output_sqnr_db"]["conv"].is_null());
  CHECK(parsed["detectors"]["quantization_error_detector"]["worst_layers"][0] == "fc");
}

TEST_CASE("saved reports read back strings whose bytes are not UTF-8 (\\udcXX), and 0x01") {
  // nlohmann's parser refused qreport's own \udcXX escapes (a lone surrogate): qreport table and diff
  // exited 2 on the report of a model whose path is not UTF-8.
  report::Report r;
  r.model_path = std::string("dir/m\xff\xfe") + "\x01" + "ab.pt";
  detectors::DetectorResult d;
  d.name = "outlier_detector";
  d.modules.push_back({"ctl\x01" "ff", {{"s", Value::string("\xf0\x9f\x82\x80 \xc3")}}});
  r.results.push_back(d);
  const std::string j = report::to_json(r);
  const report::SavedReport s = report::read_saved_report(j, "r.json");
  CHECK(s.report.model_path == r.model_path);
  REQUIRE(s.report.results.size() == 1);
  REQUIRE(s.report.results[0].modules.size() == 1);
  CHECK(s.report.results[0].modules[0].fqn == "ctl\x01" "ff");
  REQUIRE(s.report.results[0].modules[0].fields.size() == 1);
  CHECK(s.report.results[0].modules[0].fields[0].second.s == "\xf0\x9f\x82\x80 \xc3");
  // A surrogate pair whose low half lies in \udc80-\udcff is a character, not a byte; a lone \udc00
  // (no byte qreport writes) is still invalid JSON.
  CHECK(report::parse_json_value("\"\\ud83c\\udc80\"", "p").s == "\xf0\x9f\x82\x80");
  CHECK(report::parse_json_value("\"\\udcff\\\\udc80\"", "p").s == "\xff\\udc80");
  CHECK_THROWS_AS(report::parse_json_value("\"\\udc00\"", "p"), InputError);
}

TEST_CASE("write_json (qreport diff's and inspect's documents): the old layout, raw strings kept") {
  ojson doc = {{"schema_version", 1}, {"sizes", {uint64_t{18446744073709551615u}, -3, 2.5}},
               {"modules", {"a", "ctl\x01" "ff"}}, {"path", std::string("m\xff.pt")}, {"empty", ojson::object()}};
  const std::string w = report::write_json(doc);
  CHECK(w.find("\"ctl\\u0001ff\"") != std::string::npos);  // indent_json made it "ctl\udcff"
  CHECK(w.find("\"m\\udcff.pt\"") != std::string::npos);
  doc["modules"][1] = "ctl";
  doc["path"] = "m.pt";
  CHECK(report::write_json(doc) == report::indent_json(doc.dump()) + "\n");
}

TEST_CASE("a parse error in a report holding \\udcXX escapes reads as the file has it") {
  // The reader marks those escapes (2 characters longer) before parsing: the message shows the escapes
  // and the column of the file, as for the same file with escapes of the same length that need no mark.
  auto error_of = [](const std::string& text) {
    try {
      report::parse_json_value(text, "r.json");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("parsed");
  };
  const std::string marked = "{\"a\": 1,\n \"k\\udcff\\u0001ff\\udc80\": x}";
  std::string plain = "{\"a\": 1,\n \"k\\u00ff\\u0061ff\\u0080\": x}";
  std::string expected = error_of(plain);
  REQUIRE(expected.find("line 2, column 27") != std::string::npos);
  for (auto [from, to] : {std::pair{"\\u00ff", "\\udcff"}, {"\\u0061", "\\u0001"}, {"\\u0080", "\\udc80"}})
    if (const size_t at = expected.find(from); at != std::string::npos) expected.replace(at, 6, to);
  CHECK(error_of(marked) == expected);
}
