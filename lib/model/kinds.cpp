#include <regex>

#include "model/model.h"

namespace qreport::model {

std::string demangle_type_name(const std::string& qualified_name) {
  std::string name = qualified_name;
  const std::string prefix = "__torch__.";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  // TorchScript adds ___torch_mangle_N as its own path component when two classes share a name.
  static const std::regex mangle(R"(___torch_mangle_\d+\.)");
  return std::regex_replace(name, mangle, "");
}

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::string last_component(const std::string& s) {
  auto pos = s.rfind('.');
  return pos == std::string::npos ? s : s.substr(pos + 1);
}

// Module path under torch.nn or torch.ao.nn, e.g. "qat.modules.conv" for torch.ao.nn.qat.modules.conv.Conv2d.
std::optional<std::string> nn_subpath(const std::string& type_name) {
  for (const char* root : {"torch.nn.", "torch.ao.nn."}) {
    if (starts_with(type_name, root)) {
      std::string rest = type_name.substr(std::string(root).size());
      auto pos = rest.rfind('.');
      return pos == std::string::npos ? std::string() : rest.substr(0, pos);
    }
  }
  return std::nullopt;
}

int conv_dims_of(const std::string& cls, const std::string& stem) {
  for (int d = 1; d <= 3; ++d)
    if (cls == stem + std::to_string(d) + "d") return d;
  return 0;
}

}  // namespace

Kind classify(const std::string& type_name) {
  Kind k;
  const std::string cls = last_component(type_name);
  k.base = "Other";
  if (starts_with(type_name, "torch.ao.quantization.observer.") || starts_with(type_name, "torch.quantization.observer.") ||
      starts_with(type_name, "torch.ao.quantization.fake_quantize.") ||
      starts_with(type_name, "torch.quantization.fake_quantize.") ||
      starts_with(type_name, "torch.ao.quantization.fx._model_report.")) {
    k.is_observer = true;
    k.base = "Observer";
    return k;
  }
  auto sub = nn_subpath(type_name);
  if (!sub) return k;
  if (starts_with(*sub, "quantized") || starts_with(*sub, "intrinsic.quantized")) {  // also .dynamic
    k.is_quantized = true;
    k.base = "Quantized";
    return k;
  }
  if (*sub == "modules.linear") {
    // nn.Linear and its torch.nn subclasses (NonDynamicallyQuantizableLinear); not nn.Identity/Bilinear.
    if (cls == "Linear" || cls == "NonDynamicallyQuantizableLinear") {
      k.base = "Linear";
      k.is_linear = true;
      k.exact_iwe = cls == "Linear";
    }
    return k;
  }
  if (*sub == "modules.conv") {
    if (int d = conv_dims_of(cls, "Conv")) {
      k.base = cls;
      k.conv_dims = d;
      k.exact_iwe = true;
    }
    return k;
  }
  if (*sub == "qat.modules.linear" && cls == "Linear") {
    k.base = "Linear";
    k.is_linear = k.exact_iwe = k.is_qat = true;
    return k;
  }
  if (*sub == "qat.modules.conv") {
    if (int d = conv_dims_of(cls, "Conv")) {
      k.base = cls;
      k.conv_dims = d;
      k.exact_iwe = k.is_qat = true;
    }
    return k;
  }
  if (starts_with(*sub, "intrinsic.qat")) {
    // ConvBn2d, ConvBnReLU2d, ConvReLU2d subclass nnqat.ConvNd; LinearReLU, LinearBn1d subclass nn.Linear.
    k.is_qat = true;
    k.base = "Fused";
    for (const char* stem : {"ConvBnReLU", "ConvBn", "ConvReLU"})
      if (int d = conv_dims_of(cls, stem)) k.conv_dims = d;
    if (starts_with(cls, "Linear")) k.is_linear = true;
    return k;
  }
  if (starts_with(*sub, "intrinsic")) {
    k.is_fused = true;
    k.base = "Fused";
    return k;
  }
  return k;
}

}  // namespace qreport::model
