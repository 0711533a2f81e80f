// The report's advice as torchao 0.18.0's X86InductorQuantizer settings for prepare_pt2e/convert_pt2e
// (issue 25 item 5; docs/python.md, "PT2E"). What the quantizer does, read from its source
// (torchao/quantization/pt2e/quantizer/x86_inductor_quantizer.py):
// - set_module_name_qconfig(name, config) annotates the patterns whose every node has `name` in its
//   nn_module_stack; None marks them "not quantized", which also holds against a set_global config
//   (module-name settings are applied first and annotated nodes are never annotated again);
// - one quantizer is static or dynamic as a whole: a config of the other kind is skipped with a warning;
// - get_default_x86_inductor_quantization_config quantizes weights per channel (symmetric int8) and
//   static activations with HistogramObserver, dynamic ones per call; there is no equalization step.
// So each module is quantized with the one default config or kept in float, and the rest of the advice is
// listed as not expressed, in the JSON and as comments of the snippet.
#include <cstdio>

#include "report/report.h"
#include "report/svg.h"

namespace qreport::report {
namespace {

// `fqn` is `layer` or one of its ancestors (a plan's layer inside a fused module the mapping names).
bool covers(const std::string& fqn, const std::string& layer) {
  return layer == fqn || (layer.size() > fqn.size() && layer.compare(0, fqn.size(), fqn) == 0 && layer[fqn.size()] == '.');
}

bool covered_by_any(const std::string& fqn, const std::vector<std::string>& layers) {
  for (const auto& l : layers)
    if (covers(fqn, l)) return true;
  return false;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

// A Python string literal. Attribute names need no escaping, but a ModuleDict key may hold any character
// but '.', and the snippet must stay valid Python.
std::string py_str(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned>(c));
      out += hex;
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A comment line: a control character in a name would end the comment and break the snippet.
std::string py_comment(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return s;
}

std::string py_list(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + py_str(names[i]);
  return out + "]";
}

}  // namespace

Pt2eSettings pt2e_settings(const Report& r) {
  constexpr auto Named = detectors::QConfigEntry::Pt2e::Named;
  Pt2eSettings s;
  const KeepPlan& plan = r.plan;
  // A plan under int8-static or int8-dynamic is the one advice X86InductorQuantizer can carry whole: its
  // scheme is the static/dynamic choice and its keep list the None entries. The other schemes are torchao
  // configurations PT2E's x86 quantizer has no equivalent of (weight-only, int4, fp8).
  const bool plan_static = plan.ran && plan.scheme == "int8-static";
  const bool plan_dynamic = plan.ran && plan.scheme == "int8-dynamic";
  if (plan.ran && !plan_static && !plan_dynamic)
    s.not_expressed.push_back("the plan under " + plan.scheme +
                              ": X86InductorQuantizer has no such configuration (int8 static or dynamic only); "
                              "these settings follow the qconfig mapping without its keep list");
  const std::vector<std::string> none;
  const std::vector<std::string>& keep = plan_static || plan_dynamic ? plan.keep_float : none;

  // The layers set, in the mapping's (module) order, and whether each is quantized.
  struct Layer {
    const detectors::QConfigEntry* entry;
    bool quantized;
  };
  std::vector<Layer> layers;
  std::vector<std::string> dynamic_kept;
  if (plan_dynamic) {
    // int8-dynamic quantizes the layers the sensitivity pass ran (torchao's: the Linear layers).
    s.is_dynamic = true;
    std::vector<std::string> candidates;
    for (const auto& l : r.sensitivity.layers) candidates.push_back(l.fqn);
    for (const auto& e : r.qconfig)
      if (covered_by_any(e.fqn, candidates)) layers.push_back({&e, !covered_by_any(e.fqn, keep)});
  } else {
    // Dynamic only where every quantized layer's advice is dynamic; else static, and a layer advised
    // dynamic stays in float: quantizing it static is what the dynamic-static detector advises against.
    bool any_static = false, any_dynamic = false;
    for (const auto& e : r.qconfig) {
      if (e.pt2e != Named || covered_by_any(e.fqn, keep)) continue;  // only layers it quantizes by name count
      (e.activation == "default_dynamic_quant_observer" ? any_dynamic : any_static) = true;
    }
    s.is_dynamic = any_dynamic && !any_static && !plan_static;
    for (const auto& e : r.qconfig) {
      bool quantized = !covered_by_any(e.fqn, keep);
      const bool settable = e.pt2e == Named || e.pt2e == detectors::QConfigEntry::Pt2e::NoAnnotator;
      if (quantized && !s.is_dynamic && e.activation == "default_dynamic_quant_observer" && settable) {
        quantized = false;
        dynamic_kept.push_back(e.fqn);
      }
      layers.push_back({&e, quantized});
    }
  }

  // One setting per layer the quantizer can address. A MultiheadAttention's projections it cannot: it
  // finds linears through source partitions of nn.Linear and F.linear, and torch.export (2.14) gives the
  // linears inside F.multi_head_attention_forward neither, nor an nn_module_stack entry of their own, so
  // they stay in float whatever the settings (not even set_global reaches them). The .pt2 report's
  // "<mha>.in_proj" pseudo-module (Skipped) is left out silently, so that the .pt and .pt2 reports
  // give the same settings; its out_proj's line says the same of it.
  // A class it has no annotator for (Conv3d, a lone Conv1d, subclasses) cannot be quantized by name:
  // listed when the advice quantizes it, and set to None when it keeps it in float (None holds under
  // set_global, which does quantize a Conv1d followed by an nn.ReLU).
  std::vector<std::string> per_tensor, minmax, equalized, unaddressable, no_annotator;
  for (const auto& l : layers) {
    const auto& e = *l.entry;
    if (e.pt2e == detectors::QConfigEntry::Pt2e::Skipped) continue;
    if (e.pt2e == detectors::QConfigEntry::Pt2e::Unreachable) {
      if (l.quantized) unaddressable.push_back(e.fqn);
      continue;
    }
    if (e.pt2e == detectors::QConfigEntry::Pt2e::NoAnnotator && l.quantized) {
      no_annotator.push_back(e.fqn);
      continue;
    }
    s.modules.push_back({e.fqn, l.quantized});
    if (l.quantized && e.weight == "default_weight_observer") per_tensor.push_back(e.fqn);
    if (l.quantized && !s.is_dynamic && e.activation == "default_observer") minmax.push_back(e.fqn);
    if (l.quantized && e.equalization_recommended) equalized.push_back(e.fqn);
  }

  if (!dynamic_kept.empty())
    s.not_expressed.push_back("dynamic activations advised for " + joined(dynamic_kept) +
                              ": one X86InductorQuantizer is static or dynamic as a whole, so they stay in float "
                              "rather than quantized static");
  if (!per_tensor.empty())
    s.not_expressed.push_back("per-tensor weights advised for " + joined(per_tensor) +
                              ": the config quantizes weights per channel (symmetric int8)");
  if (!minmax.empty())
    s.not_expressed.push_back("MinMaxObserver activations advised for " + joined(minmax) +
                              ": the static config observes activations with HistogramObserver");
  if (!equalized.empty())
    s.not_expressed.push_back("input-weight equalization advised for " + joined(equalized) +
                              ": PT2E has no equalization step");
  if (!no_annotator.empty())
    s.not_expressed.push_back("no annotator for " + joined(no_annotator) +
                              ": X86InductorQuantizer quantizes exactly nn.Linear and nn.Conv2d (no subclass), an "
                              "nn.Conv1d only followed by an nn.ReLU inside the named module (a fused ConvReLU1d), "
                              "so they stay in float");
  if (!unaddressable.empty())
    s.not_expressed.push_back("MultiheadAttention projections " + joined(unaddressable) +
                              " (and their in-projections) stay in float: X86InductorQuantizer does not find "
                              "the linears of F.multi_head_attention_forward in an exported graph");
  return s;
}

std::string pt2e_python(const Pt2eSettings& s) {
  std::vector<std::string> quantized, kept;
  for (const auto& m : s.modules) (m.quantized ? quantized : kept).push_back(m.name);
  const std::string mode = s.is_dynamic ? "dynamic" : "static";
  std::string out = "# qreport PT2E settings (X86InductorQuantizer, torchao 0.18.0): " + mode + ", " +
                    std::to_string(quantized.size()) + " module" + (quantized.size() == 1 ? "" : "s") +
                    " quantized, " + std::to_string(kept.size()) + " kept in float\n";
  if (!s.not_expressed.empty()) {
    out += "# Not expressed by the quantizer:\n";
    for (const auto& n : s.not_expressed) out += "# - " + py_comment(n) + "\n";
  }
  out += "import torch\n"
         "from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e\n"
         "from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (\n"
         "    X86InductorQuantizer,\n"
         "    get_default_x86_inductor_quantization_config,\n"
         ")\n\n";
  out += "config = get_default_x86_inductor_quantization_config(is_dynamic=" +
         std::string(s.is_dynamic ? "True" : "False") + ")\n";
  out += "quantizer = X86InductorQuantizer()\n";
  if (!quantized.empty())
    out += "for name in " + py_list(quantized) + ":\n    quantizer.set_module_name_qconfig(name, config)\n";
  if (!kept.empty())
    out += "for name in " + py_list(kept) + ":  # in float, also under a set_global config\n"
           "    quantizer.set_module_name_qconfig(name, None)\n";
  out += "\nprepared = prepare_pt2e(torch.export.export(model, example_inputs).module(), quantizer)\n"
         "for batch in calibration_batches:\n"
         "    prepared(*batch)\n"
         "quantized = convert_pt2e(prepared)\n";
  return out;
}

// Text and HTML show the settings where they show the QConfigMapping snippet: with the plan
// (--target-sqnr). Without a plan they are in the JSON report only.
std::string pt2e_text(const Report& r) {
  if (!r.plan.ran) return "";
  return "\n== PT2E (X86InductorQuantizer) ==\n" + pt2e_python(pt2e_settings(r));
}

std::string pt2e_html(const Report& r) {
  if (!r.plan.ran) return "";
  return "\n<section id=\"pt2e\"><h2>PT2E</h2><p>The advice as <code>X86InductorQuantizer</code> settings for "
         "<code>prepare_pt2e</code>/<code>convert_pt2e</code> (torchao 0.18.0):</p><pre>" +
         svg::escape(pt2e_python(pt2e_settings(r))) + "</pre></section>\n";
}

}  // namespace qreport::report
