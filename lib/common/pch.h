// Precompiled header for the library and its tests: LibTorch's headers cost ~7 s per TU on two cores.
#pragma once
#include <torch/script.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <map>
#include <optional>
#include <string>
#include <vector>
