#include "common/errors.h"

#include <new>

namespace qreport {

std::string first_line(const std::string& message) {
  std::string line = message.substr(0, message.find('\n'));
  // c10::Error appends " (most recent call first):" or "Exception raised from ..." on the same line.
  for (const char* marker : {"Exception raised from", " (most recent call first)"}) {
    auto pos = line.find(marker);
    if (pos != std::string::npos) line = line.substr(0, pos);
  }
  // caffe2's CAFFE_ENFORCE prefixes "[enforce fail at file.cc:252] . " (the failed condition's text).
  if (line.rfind("[enforce fail at ", 0) == 0) {
    auto close = line.find("] ");
    if (close != std::string::npos) line = line.substr(close + 2);
    if (line.rfind(". ", 0) == 0) line = line.substr(2);
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

namespace qreport {

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) return true;
  const std::string what = first_line(e.what());
  // LibTorch's CPU allocator ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes")
  // and CUDA's caching allocator ("CUDA out of memory. Tried to allocate ...").
  return what.find("can't allocate memory") != std::string::npos ||
         what.find("out of memory") != std::string::npos;
}

}  // namespace qreport
