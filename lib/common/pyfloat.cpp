#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/text.h"

namespace qreport {

std::string format_db(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", std::fabs(value) < 0.05 ? 0.0 : value);
  return buf;
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form, e.g. "2.549999952316284e+00".
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  auto epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  int exp10 = std::atoi(sci.c_str() + epos + 1);
  std::string digits;
  for (char c : mant) if (c != '.') digits += c;
  std::string out = negative ? "-" : "";
  // Python's float_repr_style 'short': fixed notation for -4 <= exponent < 16, scientific otherwise.
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 >= 0) {
      std::string intpart = digits.substr(0, std::min<size_t>(digits.size(), exp10 + 1));
      while (static_cast<int>(intpart.size()) < exp10 + 1) intpart += '0';
      std::string frac = digits.size() > static_cast<size_t>(exp10 + 1) ? digits.substr(exp10 + 1) : "0";
      out += intpart + "." + frac;
    } else {
      out += "0." + std::string(-exp10 - 1, '0') + digits;
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += ebuf;
  }
  return out;
}

}  // namespace qreport
