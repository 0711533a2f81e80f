// Internal: a streaming JSON writer that writes what indent_json(dump()) writes (json_text.h), without
// building a document first. A transformer's report holds about a million numbers: building nlohmann's
// document, dumping it, re-indenting the dump and freeing the document took 0.28 s of ViT-B/16's run.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace qreport::detectors {
struct Value;
}

namespace qreport::report {

// Calls must form one JSON value: key() before each member of an object, values elsewhere.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}
  void begin_object();
  void end_object();
  void begin_array();
  void end_array();
  void key(std::string_view k);
  void null();
  void boolean(bool v);
  void integer(int64_t v);
  void unsigned_integer(uint64_t v);
  void number(double v);  // nlohmann's shortest round-trip form; a non-finite number as null
  void string(std::string_view s);

 private:
  // How a container's members are laid out: decided by its first member, as indent_json does.
  enum class Layout { Undecided, Block, Inline };
  void before_value(bool scalar);
  void open(char c);
  void close(char c);
  void newline();

  std::string& out_;
  std::vector<Layout> stack_;  // the open containers' layouts
  bool after_key_ = false;
};

// A string as JSON text, quoted, from its raw bytes: nlohmann's escapes, and each byte b that is not part
// of valid UTF-8 as \udcXX (XX = b), what json_bytes() and indent_json give a path (json_text.h): lossless
// for every string (nlohmann's dump threw on such bytes). No json_bytes() marks: a string's own 0x01 is
// \u0001, whatever follows it.
void append_json_string(std::string& out, std::string_view s);

// A report value, and a small nlohmann document (a section of the report, qreport diff's and inspect's
// JSON), through w.
void write_value(JsonWriter& w, const detectors::Value& v);
void write_ojson(JsonWriter& w, const nlohmann::ordered_json& doc);
// A whole document as JsonWriter writes it, with a final newline.
std::string write_json(const nlohmann::ordered_json& doc);

}  // namespace qreport::report
