#include "common/heap.h"

#include <climits>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace qreport {

std::string keep_freed_memory() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::strstr(tunables, "glibc.malloc.")) return "heap: glibc's malloc tunables as set in GLIBC_TUNABLES";
  // Both are needed: without mmap a freed block still goes back to the system when it ends the heap.
  const bool ok = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
  return ok ? "heap: freed memory kept for reuse (no mmap, no trim)" : "heap: the allocator refused the settings (a sanitizer's, or not glibc's); its defaults kept";
#else
  return "heap: the C library's defaults";
#endif
}

}  // namespace qreport
