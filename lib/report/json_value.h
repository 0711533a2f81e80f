// Internal: JSON text read straight into detectors::Value trees, for the readers of saved reports.
// The parse is iterative (nlohmann's SAX parser) and builds no second DOM; nesting is bounded, so the
// recursive code that later walks, prints or frees a Value cannot exhaust the stack.
#pragma once
#include <cstddef>
#include <string>

#include "detectors/detectors.h"

namespace qreport::report {

// Deeper than any report qreport writes (an option's list of lists sits at depth 8), far below what
// recursion over a Value could not handle.
constexpr size_t kMaxJsonDepth = 64;

// A place in a JSON document, as a chain of frames on the caller's stack: formatting it costs nothing
// until an error needs it. Object keys print as ".key" when they are identifiers, else as ["key"]
// (module names hold dots: $.detectors.outlier_detector.modules["conv2.0"]); array elements as [i].
struct JsonPath {
  const JsonPath* parent = nullptr;
  const std::string* key = nullptr;  // null: an array element (index), or the root when parent is null
  size_t index = 0;

  JsonPath member(const std::string& k) const { return {this, &k, 0}; }
  JsonPath element(size_t i) const { return {this, nullptr, i}; }
  std::string str() const;
};

// "$.a["b.c"][3]"; keys are JSON-escaped where they are not identifiers.
std::string path_segment_for_key(const std::string& key);

// Parses text into a Value: objects keep their members in order. Throws InputError "NAME is not valid
// JSON: ..." on a syntax error, and "NAME: PATH: ..." for nesting deeper than kMaxJsonDepth or a key
// that appears twice in one object. Integers that do not fit int64 become Float.
detectors::Value parse_json_value(const std::string& text, const std::string& name);

// A Value as compact JSON text, as nlohmann's dump() writes it (floats shortest round-trip, "1.0").
std::string json_text(const detectors::Value& v);

// "null", "a boolean", "a number", "a string", "an array" or "an object".
const char* json_type_name(const detectors::Value& v);

}  // namespace qreport::report
