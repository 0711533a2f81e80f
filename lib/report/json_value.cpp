#include "report/json_value.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/errors.h"

namespace qreport::report {
namespace {

using detectors::Value;
using ojson = nlohmann::ordered_json;

bool is_identifier(const std::string& k) {
  if (k.empty() || !(std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  return std::all_of(k.begin(), k.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// SAX handler that builds the Value tree. The stack holds the open containers; a container is only
// appended to while it is the innermost one, so the pointers into its parents stay valid.
class ValueBuilder {
 public:
  explicit ValueBuilder(const std::string& name) : name_(name) {}

  bool null() { return add(Value::null()); }
  bool boolean(bool b) { return add(Value::boolean(b)); }
  bool number_integer(int64_t i) { return add(Value::integer(i)); }
  bool number_unsigned(uint64_t u) {
    return add(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? Value::integer(static_cast<int64_t>(u))
                                                                              : Value::number(static_cast<double>(u)));
  }
  bool number_float(double f, const std::string&) { return add(Value::number(f)); }
  bool string(std::string& s) { return add(Value::string(std::move(s))); }
  template <class Binary>
  bool binary(Binary&) {
    return fail_here("binary values are not JSON", true);
  }
  bool start_object(size_t) { return open(Value::Type::Object); }
  bool start_array(size_t) { return open(Value::Type::List); }
  bool key(std::string& k) {
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
  bool parse_error(size_t, const std::string&, const Exception& e) {
    error_ = name_ + " is not valid JSON: " + first_line(e.what());
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
  ValueBuilder builder(name);
  if (!ojson::sax_parse(text, &builder)) {
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
