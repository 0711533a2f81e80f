// The .pt2 plain baseline (issue 25 item 8): qreport's interpreter of an exported program over the same
// batches with nothing observed, as baseline.cpp runs the scripted model. Same thread count, inference
// mode, and outputs kept to the end.
//   qreport_bench_exported MODEL.pt2 CALIB.pt THREADS
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/script.h>
#include <torch/serialize.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

#include "exported/exported.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: qreport_bench_exported MODEL.pt2 CALIB.pt THREADS\n";
    return 2;
  }
  try {
    at::set_num_threads(std::stoi(argv[3]));
    qreport::exported::Program program = qreport::exported::Program::load(argv[1]);
    std::ifstream in(argv[2], std::ios::binary | std::ios::ate);
    std::vector<char> bytes(static_cast<size_t>(in.tellg()));
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    c10::IValue archive = torch::pickle_load(bytes);
    c10::InferenceMode guard;
    const auto start = std::chrono::steady_clock::now();
    double checksum = 0;
    std::vector<at::Tensor> outputs;
    for (const auto& item : archive.toListRef()) outputs.push_back(program.run({item.toTensor()}).at(0));
    for (const auto& o : outputs) checksum += o.sum().item<double>();
    const double forward_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "batches " << outputs.size() << " checksum " << checksum << " forward_s " << forward_s << "\n";
  } catch (const std::exception& e) {
    std::cerr << "baseline: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
