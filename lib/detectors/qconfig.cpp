// ModelReport.generate_qconfig_mapping() and generate_equalization_mapping() (spec §3.5): every fqn any
// detector reports gets an entry; the flags of all detectors are OR-merged.
#include <map>

#include "detectors/detectors.h"
#include "model/model.h"

namespace qreport::detectors {

std::vector<QConfigEntry> merge_qconfig_info(const model::Model& model, const std::vector<DetectorResult>& results) {
  std::map<std::string, QConfigInfo> merged;
  for (const auto& r : results) {
    for (const auto& info : r.qconfig_info) {
      auto [it, inserted] = merged.try_emplace(info.fqn, info);
      if (!inserted) {
        it->second.is_activation_dynamic |= info.is_activation_dynamic;
        it->second.is_weight_per_channel |= info.is_weight_per_channel;
        it->second.is_equalization_recommended |= info.is_equalization_recommended;
      }
    }
  }
  std::vector<QConfigEntry> out;
  for (const auto& node : model.tree().nodes()) {
    auto it = merged.find(node.fqn);
    if (it == merged.end()) continue;
    QConfigEntry e;
    e.fqn = node.fqn;
    e.activation = it->second.is_activation_dynamic ? "default_dynamic_quant_observer" : "default_observer";
    e.weight = it->second.is_weight_per_channel ? "default_per_channel_weight_observer" : "default_weight_observer";
    e.equalization_recommended = it->second.is_equalization_recommended;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace qreport::detectors
