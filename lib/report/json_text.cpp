#include "report/json_text.h"

#include <vector>

namespace qreport::report {

std::string indent_json(const std::string& in) {
  std::string out;
  out.reserve(in.size() + in.size() / 4);
  enum Kind { Block, Inline };
  std::vector<Kind> stack;
  auto newline = [&] {
    out += '\n';
    out.append(2 * stack.size(), ' ');
  };
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    switch (c) {
      case '"': {  // copy the string through, escapes included, json_bytes() marks decoded
        size_t j = i + 1;
        while (j < in.size() && in[j] != '"') {
          if (in.compare(j, 6, "\\u0001") == 0 && j + 8 <= in.size()) {
            const std::string hex = in.substr(j + 6, 2);
            out.append(in, i, j - i);
            out += hex == "01" ? "\\u0001" : "\\udc" + hex;
            j += 8;
            i = j;
            continue;
          }
          j += in[j] == '\\' ? 2 : 1;
        }
        out.append(in, i, j - i + 1);
        i = j;
        break;
      }
      case '{':
      case '[': {
        const char close = c == '{' ? '}' : ']';
        if (i + 1 < in.size() && in[i + 1] == close) {  // empty: "{}" / "[]" as dump(2) writes them
          out += c;
          out += close;
          ++i;
          break;
        }
        const char first = i + 1 < in.size() ? in[i + 1] : ' ';
        const bool scalars = c == '[' && first != '{' && first != '[' && first != '"';
        out += c;
        stack.push_back(scalars ? Inline : Block);
        if (!scalars) newline();
        break;
      }
      case '}':
      case ']': {
        const Kind k = stack.empty() ? Block : stack.back();
        if (!stack.empty()) stack.pop_back();
        if (k == Block) newline();
        out += c;
        break;
      }
      case ',':
        out += ',';
        if (!stack.empty() && stack.back() == Inline)
          out += ' ';
        else
          newline();
        break;
      case ':':
        out += ": ";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace qreport::report

namespace qreport::report {

size_t utf8_length(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  auto cont = [&](size_t k) { return (byte(k) & 0xC0) == 0x80; };
  const unsigned c = byte(i);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned d = byte(i + 1);
    if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F)) return 0;
    return cont(i + 1) && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned d = byte(i + 1);
    if ((c == 0xF0 && d < 0x90) || (c == 0xF4 && d > 0x8F)) return 0;
    return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

std::string json_bytes(const std::string& raw) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < raw.size();) {
    const size_t n = utf8_length(raw, i);
    const auto b = static_cast<unsigned char>(raw[i]);
    if (n == 0 || b == 0x01) {
      out += '\x01';
      out += hex[b >> 4];
      out += hex[b & 15];
      ++i;
    } else {
      out.append(raw, i, n);
      i += n;
    }
  }
  return out;
}

}  // namespace qreport::report
