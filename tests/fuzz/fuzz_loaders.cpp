// libFuzzer targets for the loaders that read untrusted files: the calibration archive (zip parsing,
// the pickle patch, LibTorch's unpickler, the batch layouts), the TorchScript model, the statistics
// file (the archive's loader, the digest, the layout's and the semantic checks, merging), and the
// torch.export program (the PT2 zip, its JSON, weights config and payloads, the node checks). Built by
// scripts/fuzz with clang, ASan and UBSan; QREPORT_FUZZ_TARGET selects the loader at compile time.
//
// Contract under test: any input either loads or throws qreport's InputError/UsageError. A crash, a
// sanitizer report, or any other exception escaping is a bug (the CLI would report it as internal, 70).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "calibration/calibration.h"
#include "common/errors.h"
#include "model/model.h"
#if QREPORT_FUZZ_TARGET == 4
#include "exported/exported.h"
#endif
#include "stats/stats.h"

namespace {

// The loaders take paths, as the CLI does; each input is written to one private temporary file.
const std::string& scratch_path() {
  static const std::string path = [] {
    char tmpl[] = "/tmp/qreport-fuzz-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) std::abort();
    close(fd);
    return std::string(tmpl);
  }();
  return path;
}

#if QREPORT_FUZZ_TARGET == 3
// The statistics file: the digest refuses nearly every mutation at once, so the checks behind it are
// reached by reading the same bytes again without it. A file that passes them is merged with itself
// (refused: the same run twice) and with a copy under other run identifiers (the overflow checks); what
// a merge of valid files gives must be valid itself and survive its own round trip.
void load_stats(const std::string& path) {
  try {
    (void)qreport::stats::load(path);
  } catch (const qreport::InputError&) {
  }
  const auto stats = qreport::stats::load(path, /*check_digest=*/false);
  auto other = stats;
  for (auto& c : other.calibration)
    if (!c.run.empty()) c.run[0] = c.run[0] == 'f' ? '0' : 'f';
  try {
    (void)qreport::stats::merge({stats, stats}, {"a", "a"});
  } catch (const qreport::InputError&) {
  }
  const auto merged = qreport::stats::merge({stats, other}, {"a", "b"});
  try {
    qreport::stats::validate(merged, "(merged)");
    (void)qreport::stats::from_bytes(qreport::stats::to_bytes(merged), "(merged)");
  } catch (const qreport::InputError& e) {
    std::fprintf(stderr, "a merge of valid statistics is not valid: %s\n", e.what());
    std::abort();
  }
}
#endif

void load(const std::string& path) {
#if QREPORT_FUZZ_TARGET == 1
  auto archive = qreport::calibration::Archive::open(path, {});
  for (size_t i = 0; i < archive.size(); ++i) {
    for (const auto& t : archive.batch(i).positional) (void)t.sizes();
    archive.release(i);
  }
#elif QREPORT_FUZZ_TARGET == 2
  auto model = qreport::model::Model::load(path);
  (void)model.tree().size();
#elif QREPORT_FUZZ_TARGET == 4
  // What analyze and inspect read of a program that loads: its module calls, their fallbacks, its nodes.
  auto program = qreport::exported::Program::load(path);
  (void)program.node_targets();
  for (const auto& m : program.modules()) {
    bool found = false;
    (void)program.resolve(m.fqn, &found);
    (void)program.state(m.fqn + ".weight");
  }
  for (const auto& c : program.calls()) (void)c.inputs.size();
#else
  load_stats(path);
#endif
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = scratch_path();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    load(path);
  } catch (const qreport::InputError&) {
  } catch (const qreport::UsageError&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "escaped exception: %s\n", e.what());
    std::abort();
  }
  return 0;
}
