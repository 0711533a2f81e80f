// Shared by the unit tests. Include after any LibTorch header: glog defines CHECK too.
#pragma once
#include <torch/script.h>
#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#include <doctest/doctest.h>

#include <string>

inline std::string fixture(const std::string& rel) { return std::string(QREPORT_FIXTURES) + "/" + rel; }
