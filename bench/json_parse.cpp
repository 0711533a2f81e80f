// The baseline of bench/report_readers.py: read one saved report and parse it into nlohmann's DOM, the
// work any reader of the file must do at least, and nothing else. Prints the number of top-level keys
// so that the parse cannot be optimized away. nlohmann::json (std::map objects), not ordered_json: an
// ordered_json object finds each new key by a linear search, so its parse is quadratic in the number of
// modules (about 19 s for 30k modules per detector) and would flatter every ratio against it.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: qreport_bench_json_parse REPORT.json\n");
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  const auto j = nlohmann::json::parse(text.str());
  std::printf("%zu\n", j.size());
  return 0;
}
