// Small text helpers with no LibTorch dependency.
#pragma once
#include <cstddef>
#include <string>

namespace qreport {

// Python's repr() of a float: the shortest string that round-trips, "9.0", "2.549999952316284",
// "328000000.0", "1e+16", "inf", "nan". PyTorch's report strings format values this way.
std::string python_float_repr(double value);

// A value in dB for people: one decimal, and never "-0.0" (a gain of -0.01 dB is no gain).
std::string format_db(double value);

// Hex SHA-256 of a file's bytes; throws InputError when the file cannot be read.
std::string sha256_file(const std::string& path);
// SHA-256 of a buffer as 64 hex digits; allow_sha_ni=false forces the portable code (tests compare both).
std::string sha256_hex(const unsigned char* data, size_t size, bool allow_sha_ni);

}  // namespace qreport
