// Internal: JSON text as qreport wrote it before report/json_writer.h, which writes the same layout as it
// goes: indent_json and json_bytes are that writer's oracle (tests/report/test_json_writer.cpp), and
// utf8_length its UTF-8 check.
#pragma once
#include <string>
#include <string_view>

namespace qreport::report {

// Re-indents compact JSON (nlohmann's dump()) with two spaces, as dump(2) would, except that arrays of
// numbers, booleans and nulls stay on one line: a per-channel list of 3072 values is one line, not
// 3072, which keeps reports of transformers readable, diffable and quick to write.
// It also turns the marks of json_bytes() into \udcXX escapes.
std::string indent_json(const std::string& compact);

// A string for a JSON value that may hold bytes that are not UTF-8, such as a path on Linux. Each such
// byte b comes out of indent_json as the escape \udcXX (XX = b): Python's json.loads then gives the
// "surrogateescape" string that os.fsencode turns back into the same bytes. Lossless; valid UTF-8 is
// unchanged. (Internally the byte becomes \x01 and two hex digits, and a real \x01 becomes \x01 "01".)
std::string json_bytes(const std::string& raw);

// Length of the valid UTF-8 sequence at s[i], or 0 (overlong forms, surrogates and code points past
// U+10FFFF are invalid, as for nlohmann's decoder).
size_t utf8_length(std::string_view s, size_t i);

}  // namespace qreport::report
