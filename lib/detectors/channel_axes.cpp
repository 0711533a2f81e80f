// --ch-axis: which axis of a module's input the equalization and outlier detectors treat as channels.
// PyTorch's ModelReport uses one axis (1) for every module. That is the channel axis of a convolution's
// input but the token axis of a transformer's [B, T, F] activations, so `auto` uses the axis each
// module's weight consumes instead, and the graph's data flow for modules without a weight.
#include "common/errors.h"
#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::detectors {

std::optional<int> parse_ch_axis(const std::string& text) {
  if (text == "auto") return std::nullopt;
  size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || v < 0)
    throw UsageError("--ch-axis must be auto or an axis >= 0 (got '" + text + "')");
  return v;
}

ChannelAxes ChannelAxes::fixed_axis(int axis) {
  ChannelAxes a;
  a.fixed_ = axis;
  return a;
}

ChannelAxes ChannelAxes::automatic(const model::ModelView& model,
                                   const std::function<instrumentation::LayoutGuess(const std::string&)>& input_layout) {
  using instrumentation::Layout;
  ChannelAxes a;
  a.fixed_.reset();
  for (const auto& node : model.tree().nodes()) {
    AxisChoice c;
    Layout by_type = instrumentation::layout_of_module_type(node.type_name);
    if (node.kind.is_linear || by_type == Layout::Features) {
      c = {-1, 1, "the last axis, which its weight consumes"};
    } else if (node.kind.conv_dims > 0 || by_type == Layout::Channels) {
      c = {1, 1, "axis 1, which its weight consumes"};
    } else {
      auto guess = input_layout(node.fqn);
      if (guess.layout == Layout::Features)
        c = {-1, 1, "the last axis: its input is " + guess.because};
      else if (guess.layout == Layout::Channels)
        c = {1, 1, "axis 1: its input is " + guess.because};
      else
        c = {1, 1, "axis 1 (PyTorch's default): the graph does not tell which axis holds features"};
    }
    a.per_module_[node.fqn] = c;
  }
  return a;
}

AxisChoice ChannelAxes::of(const std::string& fqn) const {
  if (fixed_) return {*fixed_, *fixed_, "--ch-axis " + std::to_string(*fixed_)};
  auto it = per_module_.find(fqn);
  if (it != per_module_.end()) return it->second;
  return {1, 1, "axis 1 (PyTorch's default)"};
}

Value ChannelAxes::option_value() const { return fixed_ ? Value::integer(*fixed_) : Value::string("auto"); }

}  // namespace qreport::detectors
