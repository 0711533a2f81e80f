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

std::string root_cause_line(const std::string& message) {
  std::string best;
  size_t start = 0;
  while (start < message.size()) {
    size_t end = message.find('\n', start);
    if (end == std::string::npos) end = message.size();
    std::string line = message.substr(start, end - start);
    auto colon = line.find(": ");
    if (colon != std::string::npos && colon > 0 && line[0] != ' ') {
      std::string head = line.substr(0, colon);
      bool word = head.find(' ') == std::string::npos;
      if (word && (head.size() > 5 && (head.rfind("Error") == head.size() - 5 || head.rfind("Exception") == head.size() - 9)))
        best = line;
    }
    start = end + 1;
  }
  return best.empty() ? first_line(message) : first_line(best);
}

}  // namespace qreport
