// The benchmark's baseline: plain LibTorch inference of the same scripted model over the same batches,
// with the same thread count and the same inference mode as qreport's calibration loop. It does what a
// user's own inference program would do: torch::jit::load, torch::pickle_load, forward per batch.
//   qreport_bench_baseline MODEL.pt CALIB.pt THREADS [cpu|cuda[:N]] [--keep-freed-memory] [--fast-exit]
// --keep-freed-memory: qreport's heap policy (lib/common/heap.h), for the ratio of the analysis alone;
// without it, the C library's defaults, as a user's program has them. --fast-exit: qreport's exit, which
// skips LibTorch's static teardown once the run's own state is freed (apps/qreport/main.cpp).
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/script.h>
#include <torch/serialize.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

#include "common/heap.h"
#include "common/process_exit.h"

int main(int argc, char** argv) {
  bool fast_exit = false;
  for (; argc > 1; --argc) {
    const std::string flag = argv[argc - 1];
    if (flag == "--keep-freed-memory")
      std::cerr << "baseline: " << qreport::keep_freed_memory() << "\n";
    else if (flag == "--fast-exit")
      fast_exit = true;
    else
      break;
  }
  if (argc < 4 || argc > 5 || (argc == 5 && std::string(argv[4]).rfind("--", 0) == 0)) {
    std::cerr << "usage: qreport_bench_baseline MODEL.pt CALIB.pt THREADS [DEVICE] [--keep-freed-memory] [--fast-exit]\n";
    return 2;
  }
  try {
    at::set_num_threads(std::stoi(argv[3]));
    c10::Device device(argc > 4 ? argv[4] : "cpu");
    torch::jit::Module model = torch::jit::load(argv[1], device);
    model.eval();
    if (device.is_cuda()) at::globalContext().setAllowTF32CuDNN(false);  // float32 convolutions, as qreport
    std::ifstream in(argv[2], std::ios::binary | std::ios::ate);  // the file in one read
    std::vector<char> bytes(static_cast<size_t>(in.tellg()));
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    c10::IValue archive = torch::pickle_load(bytes);
    c10::InferenceMode guard;
    const auto start = std::chrono::steady_clock::now();
    double checksum = 0;  // keeps the outputs alive to the end, as qreport's observers keep statistics
    std::vector<at::Tensor> outputs;
    for (const auto& item : archive.toListRef()) {
      // To a GPU as qreport does it: pinned staging and an asynchronous copy (see lib/pipeline/analyze.cpp).
      const at::Tensor& host = item.toTensor();
      at::Tensor x = device.is_cuda() ? host.pin_memory().to(device, host.scalar_type(), /*non_blocking=*/true) : host.to(device);
      outputs.push_back(model.forward({x}).toTensor());
    }
    for (const auto& o : outputs) checksum += o.sum().item<double>();  // one sync at the end, like qreport
    const double forward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // forward_s: the forward passes alone (compare with qreport -v's "stage calibrate").
    std::cout << "batches " << outputs.size() << " checksum " << checksum << " forward_s " << forward_s << "\n";
  } catch (const std::exception& e) {
    std::cerr << "baseline: " << e.what() << "\n";
    return 1;
  }
  if (fast_exit) qreport::exit_without_teardown(0);  // after the model, batches and outputs are freed, as qreport frees its run's state
  return 0;
}
