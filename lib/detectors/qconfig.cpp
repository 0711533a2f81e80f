// ModelReport.generate_qconfig_mapping() and generate_equalization_mapping() (spec §3.5): every fqn any
// detector reports gets an entry; the flags of all detectors are OR-merged. Unlike PyTorch, entries name
// the module prepare_fx matches: the fused module for the children of fused modules.
#include <map>

#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::detectors {

std::string fused_ancestor(const model::ModelView& model, const std::string& fqn) {
  std::string target = fqn;
  for (std::string p = fqn; !p.empty();) {
    p = model::parent_fqn(p);
    const model::ModuleNode* node = model.tree().find(p);
    if (node && (node->kind.is_fused || (node->kind.is_qat && node->kind.base == "Fused"))) target = p;
  }
  return target;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_multihead_attention(const model::ModuleNode* node) {
  return node && ends_with(node->type_name, ".MultiheadAttention");
}

// The module whose class X86InductorQuantizer matches for a layer the mapping names: the layer, or for a
// float fused module (named instead of its children) its first child.
const model::ModuleNode& matched_module(const model::ModelView& model, const model::ModuleNode& node) {
  if (!node.kind.is_fused || node.children.empty()) return node;
  return model.tree().nodes()[static_cast<size_t>(node.children.front())];
}

// QConfigEntry::pt2e. nn.MultiheadAttention calls F.multi_head_attention_forward with its in_proj_weight
// and out_proj.weight, so in an exported graph both linears carry the MultiheadAttention as their innermost
// nn_module_stack entry, never out_proj. torchao 0.18.0's X86InductorQuantizer finds layers through source
// partitions keyed by their exact class: nn.Linear and nn.Conv2d alone, nn.Conv1d only in the sequence
// [nn.Conv1d, nn.ReLU] whose nodes all lie inside the named module (a fused ConvReLU1d), no Conv3d, and no
// subclass (a user's Linear subclass, QAT modules, NonDynamicallyQuantizableLinear).
QConfigEntry::Pt2e pt2e_reach(const model::ModelView& model, const model::ModuleNode& node) {
  const std::string parent = model::parent_fqn(node.fqn);
  if (!parent.empty() && is_multihead_attention(model.tree().find(parent)))
    return node.fqn == parent + ".in_proj" ? QConfigEntry::Pt2e::Skipped : QConfigEntry::Pt2e::Unreachable;
  const std::string& cls = matched_module(model, node).type_name;
  if (cls == "torch.nn.modules.linear.Linear" || cls == "torch.nn.modules.conv.Conv2d") return QConfigEntry::Pt2e::Named;
  if (cls == "torch.nn.modules.conv.Conv1d" && node.kind.is_fused && ends_with(node.type_name, ".ConvReLU1d"))
    return QConfigEntry::Pt2e::Named;
  return QConfigEntry::Pt2e::NoAnnotator;
}

}  // namespace

std::vector<QConfigEntry> merge_qconfig_info(const model::ModelView& model, const std::vector<DetectorResult>& results) {
  // prepare_fx matches a fused module (ConvReLU2d `conv1`) by its own name, never its children
  // (`conv1.0`): a mapping for the child would leave the fused module in float. So advice for a child of
  // a fused module goes to the fused module, OR-merged with the rest.
  std::map<std::string, QConfigInfo> by_target;
  for (const auto& r : results) {
    for (const auto& info : r.qconfig_info) {
      auto [it, inserted] = by_target.try_emplace(fused_ancestor(model, info.fqn), info);
      if (!inserted) {
        it->second.is_activation_dynamic |= info.is_activation_dynamic;
        it->second.is_weight_per_channel |= info.is_weight_per_channel;
        it->second.is_equalization_recommended |= info.is_equalization_recommended;
        it->second.is_activation_histogram |= info.is_activation_histogram;
        if (info.weight_per_channel_gain_db) it->second.weight_per_channel_gain_db = info.weight_per_channel_gain_db;
      }
    }
  }
  std::vector<QConfigEntry> out;
  for (const auto& node : model.tree().nodes()) {
    auto it = by_target.find(node.fqn);
    if (it == by_target.end()) continue;
    QConfigEntry e;
    e.fqn = node.fqn;
    // Dynamic quantization computes its range per call, so a histogram range would not be used.
    e.activation = it->second.is_activation_dynamic     ? "default_dynamic_quant_observer"
                   : it->second.is_activation_histogram ? "default_histogram_observer"
                                                        : "default_observer";
    // Per-channel weights where the error detector measured that they gain weight SQNR, per-tensor where
    // they lose it (per-channel scales can round worse); PyTorch's per-channel detector decides where
    // nothing was measured.
    const auto& gain = it->second.weight_per_channel_gain_db;
    const bool per_channel = gain ? *gain > 0.0 : it->second.is_weight_per_channel;
    e.weight = per_channel ? "default_per_channel_weight_observer" : "default_weight_observer";
    e.equalization_recommended = it->second.is_equalization_recommended;
    e.pt2e = pt2e_reach(model, node);
    out.push_back(std::move(e));
  }
  return out;
}

const QConfigEntry* entry_for(const model::ModelView& model, const std::vector<QConfigEntry>& mapping,
                              const std::string& fqn) {
  const std::string target = fused_ancestor(model, fqn);
  for (const auto& e : mapping)
    if (e.fqn == target) return &e;
  return nullptr;
}

}  // namespace qreport::detectors
