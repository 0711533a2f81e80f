#include "report/json_writer.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "detectors/detectors.h"
#include "report/json_text.h"

namespace qreport::report {

void append_json_string(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  size_t plain = 0;  // start of the run of bytes copied as they are
  auto flush = [&](size_t i) { out.append(s.data() + plain, i - plain); };
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b >= 0x20 && b != '"' && b != '\\' && b < 0x80) {
      ++i;
      continue;
    }
    if (b >= 0x80) {
      if (const size_t n = utf8_length(s, i)) {
        i += n;
        continue;
      }
    }
    flush(i);
    switch (b) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:  // another control character (nlohmann's \u00xx), or a byte that is not UTF-8 (\udcXX)
        out += b < 0x20 ? "\\u00" : "\\udc";
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    ++i;
    plain = i;
  }
  flush(s.size());
  out += '"';
}

void JsonWriter::newline() {
  out_ += '\n';
  out_.append(2 * stack_.size(), ' ');
}

// The separator before a value: none after a key; in an array, the layout its first member decides (one
// line for numbers, booleans and nulls; a line each for strings, objects and arrays), then ", " or a new
// line between members.
void JsonWriter::before_value(bool scalar) {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (stack_.empty()) return;
  Layout& l = stack_.back();
  if (l == Layout::Undecided) {
    l = scalar ? Layout::Inline : Layout::Block;
    if (l == Layout::Block) newline();
    return;
  }
  out_ += ',';
  if (l == Layout::Inline)
    out_ += ' ';
  else
    newline();
}

void JsonWriter::open(char c) {
  before_value(false);
  out_ += c;
  stack_.push_back(Layout::Undecided);
}

void JsonWriter::close(char c) {
  const Layout layout = stack_.back();
  stack_.pop_back();
  if (layout == Layout::Block) newline();  // empty ("{}", "[]") and inline containers close on their line
  out_ += c;
}

void JsonWriter::begin_object() { open('{'); }
void JsonWriter::end_object() { close('}'); }
void JsonWriter::begin_array() { open('['); }
void JsonWriter::end_array() { close(']'); }

void JsonWriter::key(std::string_view k) {
  Layout& l = stack_.back();
  if (l == Layout::Undecided) {
    l = Layout::Block;
    newline();
  } else {
    out_ += ',';
    newline();
  }
  append_json_string(out_, k);
  out_ += ": ";
  after_key_ = true;
}

void JsonWriter::null() {
  before_value(true);
  out_ += "null";
}

void JsonWriter::boolean(bool v) {
  before_value(true);
  out_ += v ? "true" : "false";
}

void JsonWriter::integer(int64_t v) {
  before_value(true);
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out_.append(buf, static_cast<size_t>(r.ptr - buf));
}

void JsonWriter::unsigned_integer(uint64_t v) {
  before_value(true);
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out_.append(buf, static_cast<size_t>(r.ptr - buf));
}

void write_ojson(JsonWriter& w, const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null: w.null(); return;
    case T::boolean: w.boolean(j.get<bool>()); return;
    case T::number_integer: w.integer(j.get<int64_t>()); return;
    case T::number_unsigned: w.unsigned_integer(j.get<uint64_t>()); return;
    case T::number_float: w.number(j.get<double>()); return;
    case T::string: w.string(j.get_ref<const std::string&>()); return;
    case T::array:
      w.begin_array();
      for (const auto& x : j) write_ojson(w, x);
      w.end_array();
      return;
    case T::object:
      w.begin_object();
      for (const auto& [k, x] : j.items()) {
        w.key(k);
        write_ojson(w, x);
      }
      w.end_object();
      return;
    default: w.null(); return;  // binary and discarded values: none in qreport's documents
  }
}

void write_value(JsonWriter& w, const detectors::Value& v) {
  using T = detectors::Value::Type;
  switch (v.type) {
    case T::Null: w.null(); return;
    case T::Bool: w.boolean(v.b); return;
    case T::Int: w.integer(v.i); return;
    case T::Float: w.number(v.f); return;  // JSON has no inf/nan: null
    case T::String: w.string(v.s); return;
    case T::List:
      w.begin_array();
      for (const auto& x : v.list) write_value(w, x);
      w.end_array();
      return;
    case T::Object:
      w.begin_object();
      for (const auto& [k, x] : v.members) {
        w.key(k);
        write_value(w, x);
      }
      w.end_object();
      return;
  }
  w.null();
}

std::string write_json(const nlohmann::ordered_json& doc) {
  std::string out;
  JsonWriter w(out);
  write_ojson(w, doc);
  out += '\n';
  return out;
}

void JsonWriter::number(double v) {
  before_value(true);
  if (!std::isfinite(v)) {
    out_ += "null";
    return;
  }
  char buf[64];  // nlohmann's serializer buffer; to_chars writes at most 25 characters of a double
  const char* end = nlohmann::detail::to_chars(buf, buf + sizeof buf, v);
  out_.append(buf, static_cast<size_t>(end - buf));
}

void JsonWriter::string(std::string_view s) {
  before_value(false);
  append_json_string(out_, s);
}

}  // namespace qreport::report
