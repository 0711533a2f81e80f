// qreport inspect on a torch.export program: the module tree and the module calls the interpreter finds
// (lib/exported). What each detector would observe needs the detectors to read an exported program's
// modules and weights, which is the next step of issue 25 (docs/design.md, "Exported programs").
#include <algorithm>
#include <map>

#include "common/errors.h"
#include "exported/exported.h"
#include "model/model.h"
#include "pipeline/analyze.h"
#include "pipeline/exported_front.h"

namespace qreport::pipeline {

void refuse_exported(const std::string& path, const char* command) {
  if (!exported::is_pt2_archive(path)) return;
  throw InputError("model '" + path + "' is a torch.export program; qreport " + command +
                   " reads TorchScript models only so far (qreport inspect reads both)");
}

report::Inspection inspect_exported(const AnalyzeOptions& o) {
  make_detectors(o);  // the same option checks as for TorchScript
  exported::Program program = exported::Program::load(o.model_path);
  report::Inspection out;
  out.model_path = o.model_path;
  std::map<std::string, int> calls;
  std::map<std::string, bool> leaf;
  std::map<std::string, std::string> functional;
  for (const auto& c : program.calls()) {
    if (!c.functional.empty()) functional[c.fqn] = c.functional;
    leaf[c.fqn] = leaf[c.fqn] || c.leaf;
    if (!c.leaf) continue;
    out.call_sites.push_back(c.fqn);
    ++calls[c.fqn];
  }
  for (const auto& m : program.modules()) {
    report::Inspection::Module row;
    row.fqn = m.fqn;
    row.type_name = !m.type_name.empty()         ? m.type_name
                    : functional.count(m.fqn) ? "(class not recorded: no call of its own)"
                                              : "(never called)";
    row.kind = model::classify(m.type_name).base;
    if (functional.count(m.fqn)) {
      row.functional = functional[m.fqn];
      // Never called, so export recorded no class: the op that applies its weight says what it is.
      if (m.type_name.empty()) row.kind = row.functional == "aten::linear" ? "Linear" : "Conv" + row.functional.substr(10);
    }
    row.depth = 0;
    for (size_t i = 0; !m.fqn.empty() && i <= m.fqn.size(); ++i) row.depth += i == m.fqn.size() || m.fqn[i] == '.';
    row.call_sites = calls.count(m.fqn) ? calls[m.fqn] : 0;
    // A module never called is a leaf when it has no submodules, as TorchScript's tree judges it, so that
    // the table marks it NEVER CALLED.
    const bool has_children = std::any_of(program.modules().begin(), program.modules().end(), [&](const auto& c) {
      return c.fqn.size() > m.fqn.size() && c.fqn.compare(0, m.fqn.size(), m.fqn) == 0 &&
             (m.fqn.empty() || c.fqn[m.fqn.size()] == '.');
    });
    row.leaf = leaf.count(m.fqn) ? leaf[m.fqn] : !has_children;
    out.modules.push_back(std::move(row));
  }
  out.ch_axis = o.ch_axis ? std::to_string(*o.ch_axis) : "auto";
  out.warnings.push_back("torch.export program (schema " + program.schema_version() + ", PyTorch " +
                         program.torch_version() + "): the detectors' observations are not listed yet; "
                         "qreport analyze does not run exported programs so far");
  return out;
}

}  // namespace qreport::pipeline
