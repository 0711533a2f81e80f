// Internal to lib/detectors: the quantization-error detector's --schemes part (quantization_error.cpp
// calls it once the layers' output SQNR is known): each module's "schemes" object, the warnings for the
// schemes left null, and a table per layer for the report text.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "detectors/detectors.h"

namespace qreport::detectors {

// 10 log10(signal / noise); nullopt, with the reason in *why, where that is not a finite number.
std::optional<double> sqnr_db(double signal, double noise, std::string* why);

// Adds "schemes" to every module of r (nothing when no scheme was asked for); returns the warnings.
std::vector<std::string> add_scheme_fields(DetectorResult& r, const LayerErrorMeasurement& measured);
// The per-layer scheme tables of the report text ("" without schemes).
std::string scheme_text(const DetectorResult& r, const LayerErrorMeasurement& measured);

}  // namespace qreport::detectors
