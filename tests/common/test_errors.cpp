// Out of memory is a resource limit of the run (exit 3, one line), not an internal error (exit 70): the
// review's 3 KB archive of a broadcast batch ran the allocator dry and was reported as a bug in qreport.
#include <doctest/doctest.h>

#include <ATen/ATen.h>

#include <new>
#include <stdexcept>

#include "common/errors.h"

TEST_CASE("is_out_of_memory recognises the allocators' failures, and only those") {
  CHECK(qreport::is_out_of_memory(std::bad_alloc()));
  bool thrown = false;
  try {
    (void)at::empty({int64_t{1} << 52}, at::kFloat);  // 16 PiB: no machine's allocator gives it
  } catch (const std::exception& e) {
    thrown = true;
    CHECK(qreport::is_out_of_memory(e));
  }
  CHECK(thrown);
  CHECK_FALSE(qreport::is_out_of_memory(std::runtime_error("mat1 and mat2 shapes cannot be multiplied")));
}
