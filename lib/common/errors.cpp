#include "common/errors.h"

namespace qreport {

std::string first_line(const std::string& message) {
  std::string line = message.substr(0, message.find('\n'));
  // c10::Error appends " (most recent call first):" or "Exception raised from ..." on the same line.
  for (const char* marker : {"Exception raised from", " (most recent call first)"}) {
    auto pos = line.find(marker);
    if (pos != std::string::npos) line = line.substr(0, pos);
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == ':')) line.pop_back();
  return line;
}

}  // namespace qreport
