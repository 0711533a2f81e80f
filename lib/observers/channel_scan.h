// Internal to the CPU per-channel kernel (channel_kernel_cpu.cpp): the streaming passes over one channel.
// min_max reads min, max and NaN presence; scan also counts the values below and at two bounds [a, b] and
// gathers the values strictly between them (see channel_kernel_cpu.cpp for how the bounds are chosen).
#pragma once
#include <cstdint>

#include "observers/channel_select.h"

namespace qreport::observers::detail {

// Min, max and NaN presence of one channel.
void min_max(const Channel& ch, float& mn, float& mx, bool& nan);

// One streaming pass: min, max and NaN presence, the counts of values < a, <= a, < b and <= b, and the
// values strictly between a and b written to inside, which has room for every value the pass may gather
// plus kScanSlack floats: the AVX2 pass stores eight lanes at a time and advances by those it keeps.
constexpr int64_t kScanSlack = 8;

struct Scan {
  int64_t lt_a = 0, le_a = 0, lt_b = 0, le_b = 0;
  int64_t inside = 0;
  float mn = kInf, mx = -kInf;
  bool nan = false;
};

// One contiguous run into c, on the widest lanes the CPU has (AVX2 where the CPU has it, checked once at
// run time; SSE2 otherwise); the values strictly inside (a, b) are appended at inside + c.inside.
void scan_runs(const float* p, int64_t len, float a, float b, Scan& c, float* inside);

// scan_runs over every run of a channel, from an empty Scan.
Scan scan(const Channel& ch, float a, float b, float* inside);

}  // namespace qreport::observers::detail
