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

TEST_CASE("first_line drops caffe2's enforce prefix") {
  CHECK(qreport::first_line("[enforce fail at inline_container.cc:252] . file in archive is not in a subdirectory a/: b\nframe #0") ==
        "file in archive is not in a subdirectory a/: b");
}

TEST_CASE("first_line drops LibTorch's backtrace") {
  CHECK(qreport::first_line("boom Exception raised from foo at bar.cpp:1\nframe 0") == "boom");
  CHECK(qreport::first_line("a\nb") == "a");
}
