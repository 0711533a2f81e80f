#include <unistd.h>

#include <cstdlib>
#include <cstdio>
#include <fstream>

#include "common/errors.h"
#include "common/text.h"
#include "test_support.h"

using qreport::python_float_repr;

TEST_CASE("python_float_repr matches Python's repr of float32 values widened to double") {
  CHECK(python_float_repr(9.0) == "9.0");
  CHECK(python_float_repr(double(2.55f)) == "2.549999952316284");
  CHECK(python_float_repr(328000000.0) == "328000000.0");
  CHECK(python_float_repr(double(3.4028234663852886e38f)) == "3.4028234663852886e+38");
  CHECK(python_float_repr(1e16) == "1e+16");
  CHECK(python_float_repr(1.5e-5) == "1.5e-05");
  CHECK(python_float_repr(0.0001) == "0.0001");
  CHECK(python_float_repr(-0.0) == "-0.0");
  CHECK(python_float_repr(0.0) == "0.0");
  CHECK(python_float_repr(-1.75) == "-1.75");
  CHECK(python_float_repr(1.0 / 0.0) == "inf");
}

TEST_CASE("sha256_file hashes the file's bytes") {
  char tmpl[] = "/tmp/qreport-sha-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  std::string path = tmpl;
  std::ofstream(path) << "abc";
  CHECK(qreport::sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::remove(path.c_str());
  CHECK_THROWS_AS(qreport::sha256_file("/nonexistent/file"), qreport::InputError);
}

TEST_CASE("sha256: FIPS 180-2 vectors, the SHA-NI and portable code agree at every length") {
  const std::string million(1000000, 'a');
  const auto* m = reinterpret_cast<const unsigned char*>(million.data());
  for (bool sha_ni : {false, true}) {
    CAPTURE(sha_ni);
    CHECK(qreport::sha256_hex(m, 0, sha_ni) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(qreport::sha256_hex(m, million.size(), sha_ni) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
  std::string bytes;
  for (int i = 0; i < 300; ++i) bytes.push_back(static_cast<char>((i * 131 + 7) & 0xff));
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  for (size_t n = 0; n <= bytes.size(); n += 13) CHECK(qreport::sha256_hex(b, n, true) == qreport::sha256_hex(b, n, false));
}

TEST_CASE("first_line drops caffe2's enforce prefix") {
  CHECK(qreport::first_line("[enforce fail at inline_container.cc:252] . file in archive is not in a subdirectory a/: b\nframe #0") ==
        "file in archive is not in a subdirectory a/: b");
}

TEST_CASE("first_line drops LibTorch's backtrace") {
  CHECK(qreport::first_line("boom Exception raised from foo at bar.cpp:1\nframe 0") == "boom");
  CHECK(qreport::first_line("a\nb") == "a");
}
