#include "pipeline/layer_capture.h"

#include <ATen/Functions.h>

namespace qreport::pipeline {

LayerCapture::LayerCapture(const std::map<int64_t, Key>& ids, size_t batches, int64_t budget_bytes)
    : batches_(ids.empty() ? 0 : batches), budget_(budget_bytes) {
  for (const auto& [id, key] : ids) {
    Point p;
    p.output = key.second == detectors::Side::Output;
    p.batches.resize(batches_);
    points_.emplace(id, std::move(p));
    by_key_[key] = id;
  }
}

void LayerCapture::offer(int64_t id, const at::Tensor& x) {
  if (batch_ >= batches_) return;
  auto it = points_.find(id);
  if (it == points_.end() || it->second.dropped) return;
  // The error pass skips what is not floating (an Embedding's indices are not a layer input it measures).
  if (!x.is_floating_point()) return;
  Point& p = it->second;
  const int64_t size = static_cast<int64_t>(x.numel()) * static_cast<int64_t>(x.element_size());
  // Outputs save one application of the float layer, inputs a forward of the whole model: outputs get half.
  if (bytes_ + size > (p.output ? budget_ / 2 : budget_)) {  // measured without the copies instead
    for (const auto& calls : p.batches)
      for (const auto& t : calls) bytes_ -= static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
    p.batches.clear();
    p.dropped = true;
    return;
  }
  // A copy: the graph may write into the tensor in place after this call (an in-place activation).
  p.batches[batch_].push_back(x.clone(at::MemoryFormat::Preserve));
  bytes_ += size;
}

void LayerCapture::batch_done() {
  if (batch_ < batches_) ++batch_;
}

const std::vector<std::vector<at::Tensor>>* LayerCapture::calls(const std::string& site,
                                                                 detectors::Side side) const {
  auto s = by_key_.find({site, side});
  if (s == by_key_.end() || batch_ < batches_) return nullptr;
  const Point& p = points_.at(s->second);
  return p.dropped ? nullptr : &p.batches;
}

bool output_worth_keeping(const at::Tensor& weight) {
  if (!weight.defined() || weight.dim() < 1 || weight.size(0) == 0) return false;
  // Break-even at about 2.5 / 0.02 = 125 multiply-adds per value (the comment in layer_capture.h); the
  // threshold sits above it, where the measured runs agreed.
  constexpr int64_t kMinWork = 128;
  return weight.numel() / weight.size(0) >= kMinWork;
}

std::map<int64_t, LayerCapture::Key> capture_points(const model::ModelView& model,
                                                    const std::vector<LayerCapture::Key>& planned_keys,
                                                    const CaptureSites& front) {
  using detectors::Side;
  const model::ModuleTree& tree = model.tree();
  std::map<int64_t, LayerCapture::Key> out;
  std::map<LayerCapture::Key, int64_t> planned;
  for (size_t id = 0; id < planned_keys.size(); ++id) planned[planned_keys[id]] = static_cast<int64_t>(id);
  std::map<std::string, int> layers_at;  // site -> Linear/Conv layers measured there
  for (const auto& node : tree.nodes())
    if (node.kind.is_linear_or_conv())
      if (auto site = front.resolve(node.fqn)) ++layers_at[*site];
  int64_t next = static_cast<int64_t>(planned_keys.size());
  for (const auto& [site, n] : layers_at) {
    auto in = planned.find({site, Side::Input});
    if (in == planned.end()) continue;
    out[in->second] = {site, Side::Input};
    // The output is the layer's own only where one layer owns the call (not a fused parent's children).
    const model::ModuleNode* node = tree.find(site);
    if (n != 1 || !node || !node->kind.is_linear_or_conv() || !front.own_call(site)) continue;
    if (!output_worth_keeping(model.weight(site))) continue;
    auto o = planned.find({site, Side::Output});
    int64_t id = 0;
    if (o != planned.end()) id = o->second;
    else if (front.observe_output(site, next)) id = next++;
    else continue;
    out[id] = {site, Side::Output};
  }
  return out;
}

void LayerCapture::clear() {
  points_.clear();
  by_key_.clear();
  bytes_ = 0;
}

}  // namespace qreport::pipeline
