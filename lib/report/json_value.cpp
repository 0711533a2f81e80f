#include "report/json_value.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "common/errors.h"

namespace qreport::report {
namespace {

using detectors::Value;
using ojson = nlohmann::ordered_json;

bool is_identifier(const std::string& k) {
  if (k.empty() || !(std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  return std::all_of(k.begin(), k.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// qreport writes a byte b that is not part of valid UTF-8 as \udcXX (XX = b, report/json_writer.h), the
// escape Python's json and os.fsencode read back as that byte; nlohmann's parser refuses it as a lone
// surrogate. Such escapes become \u0001 and the two hex digits (json_bytes()' marks), and a real \u0001
// becomes \u0001 "01", so that unmark_bytes() turns the parsed strings back into their bytes. A \udcXX
// that ends a surrogate pair stays as it is. `marks`: where each mark starts in `out`; none where the
// text has no such escape (`out` is then not to be used).
void mark_byte_escapes(const std::string& text, std::string& out, std::vector<size_t>& marks) {
  if (text.find("\\u") == std::string::npos) return;  // qreport escapes few characters this way
  out.clear();
  out.reserve(text.size());
  bool after_high = false;  // the escape just before was a high surrogate (\ud800-\udbff)
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '\\' || i + 1 >= text.size()) {
      after_high = false;
      out += text[i++];
      continue;
    }
    if (text[i + 1] != 'u' || i + 6 > text.size()) {
      after_high = false;
      out.append(text, i, 2);  // \" \\ \n ...: the escaped character is not a backslash that starts one
      i += 2;
      continue;
    }
    int v = 0;
    bool hex = true;
    for (size_t k = i + 2; k < i + 6; ++k) {
      const int d = hex_digit(text[k]);
      hex = hex && d >= 0;
      v = v * 16 + (d < 0 ? 0 : d);
    }
    static const char* digits = "0123456789abcdef";
    if (hex && v >= 0xdc80 && v <= 0xdcff && !after_high) {
      marks.push_back(out.size());
      out += "\\u0001";
      out += digits[(v >> 4) & 15];
      out += digits[v & 15];
    } else if (hex && v == 0x0001) {
      marks.push_back(out.size());
      out += "\\u000101";
    } else {
      out.append(text, i, 6);
    }
    after_high = hex && v >= 0xd800 && v <= 0xdbff;
    i += 6;
  }
}

// The marks of mark_byte_escapes() back into bytes: 0x01 and two hex digits is the byte they spell.
void unmark_bytes(std::string& s) {
  if (s.find('\x01') == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x01' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  s = std::move(out);
}

// nlohmann's parse error on the marked text, as it reads for the file: each mark (8 characters for the
// file's 6) back to its escape, and the column less the 2 characters each mark before the error on its
// line added. `position`: where the parser stopped in the marked text.
std::string unmark_error(std::string message, size_t position, const std::vector<size_t>& marks) {
  static const std::string kColumn = ", column ";
  const size_t at = message.find(kColumn);
  if (at != std::string::npos) {
    const size_t digits = at + kColumn.size();
    size_t end = digits;
    while (end < message.size() && std::isdigit(static_cast<unsigned char>(message[end]))) ++end;
    if (end > digits && end - digits < 19) {
      const size_t column = std::stoull(message.substr(digits, end - digits));
      const size_t line_start = position >= column ? position - column : 0;
      size_t extra = 0;
      for (size_t m : marks)
        if (m >= line_start && m < position) extra += std::min<size_t>(position - m, 8) - std::min<size_t>(position - m, 6);
      message.replace(digits, end - digits, std::to_string(column - std::min(extra, column)));
    }
  }
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    if (message.compare(i, 6, "\\u0001") == 0 && i + 8 <= message.size() && hex_digit(message[i + 6]) >= 0 &&
        hex_digit(message[i + 7]) >= 0) {
      const bool real = message[i + 6] == '0' && message[i + 7] == '1';
      out += real ? "\\u0001" : "\\udc" + message.substr(i + 6, 2);
      i += 7;
    } else {
      out += message[i];
    }
  }
  return out;
}

// SAX handler that builds the Value tree. The stack holds the open containers; a container is only
// appended to while it is the innermost one, so the pointers into its parents stay valid.
class ValueBuilder {
 public:
  // marks: mark_byte_escapes()' (empty: the text had none, and its strings need no decoding).
  ValueBuilder(const std::string& name, const std::vector<size_t>& marks) : name_(name), marks_(marks) {}

  bool null() { return add(Value::null()); }
  bool boolean(bool b) { return add(Value::boolean(b)); }
  bool number_integer(int64_t i) { return add(Value::integer(i)); }
  bool number_unsigned(uint64_t u) {
    return add(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? Value::integer(static_cast<int64_t>(u))
                                                                              : Value::number(static_cast<double>(u)));
  }
  bool number_float(double f, const std::string&) { return add(Value::number(f)); }
  bool string(std::string& s) {
    if (!marks_.empty()) unmark_bytes(s);
    return add(Value::string(std::move(s)));
  }
  template <class Binary>
  bool binary(Binary&) {
    return fail_here("binary values are not JSON", true);
  }
  bool start_object(size_t) { return open(Value::Type::Object); }
  bool start_array(size_t) { return open(Value::Type::List); }
  bool key(std::string& k) {
    if (!marks_.empty()) unmark_bytes(k);
    stack_.back()->members.emplace_back(std::move(k), Value());
    return true;
  }
  bool end_object() {
    // A key twice: JSON parsers disagree on which one wins, so the report is ambiguous.
    const auto& m = stack_.back()->members;
    std::vector<std::string_view> keys;
    keys.reserve(m.size());
    for (const auto& kv : m) keys.emplace_back(kv.first);
    std::sort(keys.begin(), keys.end());
    auto dup = std::adjacent_find(keys.begin(), keys.end());
    if (dup != keys.end())
      return fail_here("the key " + ojson(std::string(*dup)).dump(-1, ' ', false, ojson::error_handler_t::replace) +
                           " appears twice",
                       false);
    stack_.pop_back();
    return true;
  }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  template <class Exception>
  bool parse_error(size_t position, const std::string&, const Exception& e) {
    const std::string what = first_line(e.what());
    error_ = name_ + " is not valid JSON: " + (marks_.empty() ? what : unmark_error(what, position, marks_));
    return false;
  }

  Value take() { return std::move(root_); }
  const std::string& error() const { return error_; }

 private:
  // The slot the next value goes to: the root, the last key's value, or a new array element.
  Value* slot() {
    if (stack_.empty()) return &root_;
    Value* top = stack_.back();
    if (top->type == Value::Type::Object) return &top->members.back().second;
    top->list.emplace_back();
    return &top->list.back();
  }
  bool add(Value v) {
    *slot() = std::move(v);
    return true;
  }
  bool open(Value::Type type) {
    if (stack_.size() >= kMaxJsonDepth) {
      slot();  // in an array, the element's index, so that the path names the container too deep
      return fail_here("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels", true);
    }
    Value* v = slot();
    v->type = type;
    stack_.push_back(v);
    return true;
  }
  // Records the error at the path of the innermost open container, or of its last member when
  // at_member (the value being read).
  bool fail_here(const std::string& what, bool at_member) {
    std::string path = "$";
    for (const Value* v : stack_) {
      if (v->type == Value::Type::Object) {
        if (!v->members.empty() && v != stack_.back()) path += path_segment_for_key(v->members.back().first);
      } else if (!v->list.empty() && v != stack_.back()) {
        path += "[" + std::to_string(v->list.size() - 1) + "]";
      }
    }
    if (!stack_.empty() && at_member) {
      const Value* top = stack_.back();
      if (top->type == Value::Type::Object && !top->members.empty())
        path += path_segment_for_key(top->members.back().first);
      else if (top->type == Value::Type::List && !top->list.empty())
        path += "[" + std::to_string(top->list.size() - 1) + "]";
    }
    error_ = name_ + ": " + path + ": " + what;
    return false;
  }

  const std::string& name_;
  const std::vector<size_t>& marks_;
  Value root_;
  std::vector<Value*> stack_;
  std::string error_;
};

ojson to_ojson(const Value& v) {
  switch (v.type) {
    case Value::Type::Null: return nullptr;
    case Value::Type::Bool: return v.b;
    case Value::Type::Int: return v.i;
    case Value::Type::Float: return v.f;
    case Value::Type::String: return v.s;
    case Value::Type::List: {
      ojson a = ojson::array();
      for (const auto& x : v.list) a.push_back(to_ojson(x));
      return a;
    }
    case Value::Type::Object: {
      ojson o = ojson::object();
      for (const auto& [k, x] : v.members) o[k] = to_ojson(x);
      return o;
    }
  }
  return nullptr;
}

}  // namespace

std::string path_segment_for_key(const std::string& key) {
  if (is_identifier(key)) return "." + key;
  return "[" + ojson(key).dump(-1, ' ', false, ojson::error_handler_t::replace) + "]";
}

std::string JsonPath::str() const {
  if (!parent) return "$";
  return parent->str() + (key ? path_segment_for_key(*key) : "[" + std::to_string(index) + "]");
}

Value parse_json_value(const std::string& text, const std::string& name) {
  std::string marked;
  std::vector<size_t> marks;
  mark_byte_escapes(text, marked, marks);
  ValueBuilder builder(name, marks);
  if (!ojson::sax_parse(marks.empty() ? text : marked, &builder)) {
    if (builder.error().empty()) throw InputError(name + " is not valid JSON");
    throw InputError(builder.error());
  }
  return builder.take();
}

std::string json_text(const Value& v) {
  return to_ojson(v).dump(-1, ' ', false, ojson::error_handler_t::replace);
}

const char* json_type_name(const Value& v) {
  switch (v.type) {
    case Value::Type::Null: return "null";
    case Value::Type::Bool: return "a boolean";
    case Value::Type::Int:
    case Value::Type::Float: return "a number";
    case Value::Type::String: return "a string";
    case Value::Type::List: return "an array";
    case Value::Type::Object: return "an object";
  }
  return "a value";
}

}  // namespace qreport::report
