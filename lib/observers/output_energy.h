// The error pass's two sums over one layer call: the float output's energy sum(y^2) and the quantization
// error's sum((yq - y)^2), added to float64 accumulators on the output's device.
#pragma once
#include <ATen/core/Tensor.h>

namespace qreport::observers {

// y, yq: the float and quantized layer's outputs, float32, one shape. signal, noise: 0-dim float64
// tensors on their device. On the CPU (float32, both laid out alike and densely) one read of both in qreport's kernel: each
// difference in float32 as the tensors hold it, squares and sums in float64, in a fixed block order
// (the same sums whatever the thread count), and no temporary. Elsewhere ATen's square and sum, without
// a host sync.
void add_output_energy(const at::Tensor& y, const at::Tensor& yq, at::Tensor& signal, at::Tensor& noise);

}  // namespace qreport::observers
