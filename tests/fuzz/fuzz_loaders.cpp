// libFuzzer targets for the loaders that read untrusted files: the calibration archive (zip parsing,
// the pickle patch, LibTorch's unpickler, the batch layouts), the TorchScript model, and the statistics
// file (the archive's loader, then the layout's checks). Built by
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
#else
  auto stats = qreport::stats::load(path);
  (void)stats.points.size();
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
