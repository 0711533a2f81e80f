// The sensitivity bars and the plan's curve, as text and as inline SVG (no script: every name and value
// is written on the chart, nothing needs hovering).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/text.h"
#include "report/report.h"
#include "report/svg.h"

namespace qreport::report {
namespace {

std::string show(const std::optional<double>& v) { return v ? format_db(*v) + " dB" : std::string("null"); }

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// The layer names of a chart at most this many characters (the end kept: it tells layers apart).
std::string short_name(const std::string& s, size_t max_chars = 36) {
  return s.size() <= max_chars ? s : "…" + s.substr(s.size() - (max_chars - 1));
}

// The dB scale of both charts: 0 up to the largest finite value (and the target), rounded up to 10 dB.
double scale_top(const Report& r) {
  double hi = 0.0;
  for (const auto& l : r.sensitivity.layers)
    for (const auto& v : {l.enable_db, l.skip_db})
      if (v && std::isfinite(*v)) hi = std::max(hi, *v);
  for (const auto& c : r.plan.curve)
    if (c.output_sqnr_db && std::isfinite(*c.output_sqnr_db)) hi = std::max(hi, *c.output_sqnr_db);
  // The target is on the scale unless it is far above every figure (--target-sqnr 1e9): then its line sits
  // at the top, its label says the number, and the figures keep a readable scale.
  if (r.plan.ran) hi = std::max(hi, std::min(r.plan.target_sqnr_db, 2.0 * hi + 20.0));
  return std::max(10.0, std::ceil(hi / 10.0) * 10.0);
}

std::string ascii_bar(const std::optional<double>& v, double top, size_t width) {
  const double x = v ? std::clamp(*v / top, 0.0, 1.0) : 1.0;  // null: no noise at all, the full bar
  const size_t n = static_cast<size_t>(std::lround(x * static_cast<double>(width)));
  return std::string(n, '#') + std::string(width - n, ' ');
}

// One horizontal bar per layer: the enable-one figure (the model output SQNR with only this layer
// quantized; short bars are the sensitive layers), the disable-one figure written beside it.
std::string bars_svg(const Report& r, double top) {
  const auto& layers = r.sensitivity.layers;
  const double name_w = 230, bar_w = 360, row = 16, head = 30;
  const double width = name_w + bar_w + 190, height = head + row * static_cast<double>(layers.size()) + 24;
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
                    "\" font-size=\"11\" font-family=\"system-ui,sans-serif\">";
  out += "<text x=\"0\" y=\"14\" font-weight=\"bold\" font-size=\"13\">Sensitivity under " +
         svg::escape(r.sensitivity.scheme) + ": model output SQNR with only this layer quantized</text>";
  for (int t = 0; t <= 4; ++t) {
    const double x = name_w + bar_w * t / 4.0;
    out += "<line x1=\"" + num(x) + "\" y1=\"" + num(head - 4) + "\" x2=\"" + num(x) + "\" y2=\"" + num(height - 20) +
           "\" stroke=\"#ddd\"/><text x=\"" + num(x) + "\" y=\"" + num(height - 8) + "\" text-anchor=\"middle\">" +
           num(top * t / 4.0) + " dB</text>";
  }
  const bool has_target = r.plan.ran;
  const double target = r.plan.target_sqnr_db;
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    const double y = head + row * static_cast<double>(i);
    const double frac = l.enable_db ? std::clamp(*l.enable_db / top, 0.0, 1.0) : 1.0;
    const bool low = has_target && l.enable_db && *l.enable_db < target;
    out += "<text x=\"" + num(name_w - 6) + "\" y=\"" + num(y + 11) + "\" text-anchor=\"end\">" +
           svg::escape(short_name(l.fqn)) + "</text>";
    out += "<rect x=\"" + num(name_w) + "\" y=\"" + num(y + 2) + "\" width=\"" + num(bar_w * frac) +
           "\" height=\"12\" fill=\"" + (low ? "#d62728" : "#1f77b4") + "\"/>";
    out += "<text x=\"" + num(name_w + bar_w + 6) + "\" y=\"" + num(y + 11) + "\">" + svg::escape(show(l.enable_db)) +
           (r.sensitivity.disable_one ? " · all but it: " + svg::escape(show(l.skip_db)) : std::string()) + "</text>";
  }
  if (has_target) {
    const double x = name_w + bar_w * std::clamp(target / top, 0.0, 1.0);
    out += "<line x1=\"" + num(x) + "\" y1=\"" + num(head - 4) + "\" x2=\"" + num(x) + "\" y2=\"" + num(height - 20) +
           "\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>";
  }
  return out + "</svg>";
}

// The plan's curve, compact, to sit beside the overview chart: the model output SQNR (y) as the keep list
// grows (x), the target dashed, and under the plot one line per point naming the layer it added and its
// figure (no hovering needed; long walks list their first kListed points, the keep list is in full below).
std::string curve_svg(const Report& r, double top) {
  constexpr size_t kListed = 30;
  const auto& c = r.plan.curve;
  const double left = 40, plot_w = 270, plot_h = 170, head = 40, line_h = 13;
  const size_t listed = std::min(c.size(), kListed);
  const double list_top = head + plot_h + 34;
  const double width = left + plot_w + 20;
  const double height = list_top + line_h * static_cast<double>(listed + (c.size() > listed ? 1 : 0)) + 6;
  const double xmax = std::max<double>(1.0, static_cast<double>(c.empty() ? 1 : c.back().kept));
  auto X = [&](double k) { return left + plot_w * k / xmax; };
  auto Y = [&](double db) { return head + plot_h * (1.0 - std::clamp(db / top, 0.0, 1.0)); };
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
                    "\" font-size=\"10\" font-family=\"system-ui,sans-serif\" id=\"plan-curve\">";
  out += "<text x=\"0\" y=\"14\" font-weight=\"bold\" font-size=\"12\">Plan (" + svg::escape(r.plan.scheme) +
         "): model output SQNR</text><text x=\"0\" y=\"29\" font-size=\"11\">as layers are kept " +
         (r.plan.keep_as == "float" ? "in float" : "at int8") + "</text>";
  for (int t = 0; t <= 4; ++t) {
    const double db = top * t / 4.0;
    out += "<line x1=\"" + num(left) + "\" y1=\"" + num(Y(db)) + "\" x2=\"" + num(left + plot_w) + "\" y2=\"" + num(Y(db)) +
           "\" stroke=\"#ddd\"/><text x=\"" + num(left - 4) + "\" y=\"" + num(Y(db) + 4) + "\" text-anchor=\"end\">" +
           num(db) + "</text>";
  }
  out += "<line x1=\"" + num(left) + "\" y1=\"" + num(Y(r.plan.target_sqnr_db)) + "\" x2=\"" + num(left + plot_w) +
         "\" y2=\"" + num(Y(r.plan.target_sqnr_db)) + "\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/><text x=\"" +
         num(left + plot_w) + "\" y=\"" + num(Y(r.plan.target_sqnr_db) - 3) + "\" text-anchor=\"end\" fill=\"#d62728\">target " +
         format_db(r.plan.target_sqnr_db) + " dB</text>";
  // x ticks: every point up to 10 points, else about 10 of them (the last always).
  const size_t every = std::max<size_t>(1, (c.size() + 9) / 10);
  std::string path;
  for (size_t i = 0; i < c.size(); ++i) {
    const double db = c[i].output_sqnr_db ? *c[i].output_sqnr_db : top;
    const double x = X(static_cast<double>(c[i].kept)), y = Y(db);
    path += (path.empty() ? "M" : "L") + num(x) + " " + num(y);
    out += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"2.5\" fill=\"#1f77b4\"/>";
    if (i % every == 0 || i + 1 == c.size())
      out += "<text x=\"" + num(x) + "\" y=\"" + num(head + plot_h + 13) + "\" text-anchor=\"middle\">" +
             std::to_string(c[i].kept) + "</text>";
  }
  out += "<path d=\"" + path + "\" fill=\"none\" stroke=\"#1f77b4\"/>";
  out += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(head + plot_h + 26) +
         "\" text-anchor=\"middle\">layers kept</text>";
  for (size_t i = 0; i < listed; ++i)
    out += "<text x=\"" + num(left - 4) + "\" y=\"" + num(list_top + line_h * static_cast<double>(i)) +
           "\" text-anchor=\"end\">" + std::to_string(c[i].kept) + "</text><text x=\"" + num(left) + "\" y=\"" +
           num(list_top + line_h * static_cast<double>(i)) + "\">" +
           svg::escape((c[i].added.empty() ? std::string("none kept") : "+" + short_name(c[i].added)) + ": " +
                       show(c[i].output_sqnr_db)) +
           "</text>";
  if (c.size() > listed)
    out += "<text x=\"" + num(left) + "\" y=\"" + num(list_top + line_h * static_cast<double>(listed)) + "\">… " +
           std::to_string(c.size() - listed) + " more points (the keep list is in the Sensitivity section)</text>";
  return out + "</svg>";
}

}  // namespace

std::string plan_python(const KeepPlan& p) {
  std::string names;
  for (size_t i = 0; i < p.keep_float.size(); ++i) names += (i ? ", \"" : "\"") + p.keep_float[i] + "\"";
  if (p.scheme == "int8-static")
    return "# qreport plan (int8-static): the report's QConfigMapping (docs/python.md), kept layers in float\n"
           "qconfig_mapping, equalization_mapping = mappings_from_report(\"report.json\", model)\n"
           "for fqn in [" + names + "]:\n"
           "    qconfig_mapping.set_module_name(_module_name(model, fqn), None)\n";
  std::string config, import = "quantize_", layers = "torch.nn.Linear";
  if (p.scheme == "int8-weight-only") config = "Int8WeightOnlyConfig()";
  else if (p.scheme == "int8-dynamic") config = "Int8DynamicActivationInt8WeightConfig()";
  else if (p.scheme == "fp8-dynamic") config = "Float8DynamicActivationFloat8WeightConfig()";
  else if (p.scheme == "fp8-dynamic-per-row") config = "Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())";
  else if (p.scheme.rfind("int4-weight-only-g", 0) == 0)
    config = "Int4WeightOnlyConfig(group_size=" + p.scheme.substr(18) + ")";
  if (config.empty()) return "";
  import += ", " + config.substr(0, config.find('('));
  if (p.scheme == "fp8-dynamic") layers = "(torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d)";
  if (p.scheme == "fp8-dynamic-per-row") import += ", PerRow";
  const bool int4 = p.keep_as == "int8-weight-only";
  if (int4) import += ", Int8WeightOnlyConfig";
  std::string out = "# qreport plan (" + p.scheme + ", torchao 0.18.0): " +
                    (int4 ? "kept layers at int8-weight-only\n" : "kept layers in float\n");
  // Checked on TransformerEncoderLayer with the int8 configurations: under torch.no_grad() the model fails
  // in torchao 0.18.0 (review), under inference_mode it runs and matches the plan's figure.
  out += "# run the quantized model under torch.inference_mode(): under torch.no_grad() nn.MultiheadAttention's\n"
         "# fast path transposes out_proj's weight (aten.t), which torchao 0.18.0's quantized tensors do not implement\n";
  out += "import torch\nfrom torchao.quantization import " + import + "\n\n";
  out += "keep = " + (names.empty() ? std::string("set()") : "{" + names + "}") + "\n";  // {} is a dict
  if (int4)
    out += "quantize_(model, Int8WeightOnlyConfig(), filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear) and fqn in keep)\n";
  std::string filter = "isinstance(m, " + layers + ") and fqn not in keep";
  if (p.scheme == "fp8-dynamic") {
    // quantize_ does not skip a 128x128 Linear under per-tensor fp8, but its matmul then fails
    // (schemes::not_applicable): leave them out, as qreport's runs do, so that the pasted code runs.
    out += "# torchao 0.18.0's per-tensor fp8 matmul fails on 128x128 Linear weights: those stay in float\n";
    filter += " and not (isinstance(m, torch.nn.Linear) and m.weight.shape == (128, 128))";
  }
  out += "quantize_(model, " + config + ", filter_fn=lambda m, fqn: " + filter + ")\n";
  return out;
}

std::string sensitivity_text(const Report& r) {
  if (!r.sensitivity.ran) return "";
  const auto& s = r.sensitivity;
  const double top = scale_top(r);
  std::string out = "\n== sensitivity (" + s.scheme + ", " + std::to_string(s.batches) + " batch" +
                    (s.batches == 1 ? "" : "es") + ") ==\n";
  out += "Model output SQNR with every layer quantized: " + show(s.all_quantized_db) + ". Per layer: only this layer "
         "quantized (bar, 0-" + format_db(top) + " dB)" +
         (s.disable_one ? ", and every layer but this one:\n" : " (disable-one not run: --sensitivity-runs enable-one):\n");
  size_t width = 0;
  for (const auto& l : s.layers) width = std::max(width, l.fqn.size());
  for (const auto& l : s.layers)
    out += "  " + l.fqn + std::string(width - l.fqn.size(), ' ') + " |" + ascii_bar(l.enable_db, top, 30) + "| " +
           show(l.enable_db) + (s.disable_one ? ", all but it " + show(l.skip_db) : std::string()) + "\n";
  if (!s.not_quantized.empty())
    out += "  (" + std::to_string(s.not_quantized.size()) + " layer" + (s.not_quantized.size() == 1 ? "" : "s") +
           " in float in every run: the scheme does not quantize them)\n";
  if (!r.plan.ran) return out;
  const auto& p = r.plan;
  out += "\n== plan (--target-sqnr " + format_db(p.target_sqnr_db) + " dB, " + p.scheme + ") ==\n";
  out += std::string(p.reached ? "Reached: " : "NOT reached: ") + show(p.achieved_output_sqnr_db) + " with " +
         std::to_string(p.keep_float.size()) + " layer" + (p.keep_float.size() == 1 ? "" : "s") + " kept " +
         (p.keep_as == "float" ? "in float" : "at int8-weight-only") + "; " + format_db(100.0 * p.quantized_weight_fraction) +
         "% of the Linear/Conv weights quantized under " + p.scheme + ". " + p.note + ".\n";
  for (const auto& f : p.keep_float) out += "  keep " + f + "\n";
  out += "Curve (layers kept: model output SQNR; '|' marks the target):\n";
  const size_t target_col = static_cast<size_t>(std::lround(std::clamp(p.target_sqnr_db / top, 0.0, 1.0) * 40));
  for (const auto& c : p.curve) {
    std::string bar = ascii_bar(c.output_sqnr_db, top, 40) + " ";
    bar[std::min(target_col, bar.size() - 1)] = '|';
    out += "  " + std::string(c.kept < 10 ? "  " : c.kept < 100 ? " " : "") + std::to_string(c.kept) + " " + bar + " " +
           show(c.output_sqnr_db) + (c.added.empty() ? "" : "  +" + c.added) + "\n";
  }
  if (const std::string py = plan_python(p); !py.empty()) out += "In Python:\n" + py;
  return out;
}

std::string sensitivity_html(const Report& r) {
  if (!r.sensitivity.ran) return "";
  const double top = scale_top(r);
  std::string out = "\n<section id=\"sensitivity\"><h2>Sensitivity</h2><p>Under <code>" + svg::escape(r.sensitivity.scheme) +
                    "</code> on " + std::to_string(r.sensitivity.batches) +
                    " batches. Model output SQNR with every layer quantized: <b>" + show(r.sensitivity.all_quantized_db) +
                    "</b>. A short bar is a layer that alone costs the model much" +
                    std::string(r.sensitivity.disable_one ? "; \"all but it\" is the model with every "
                                                            "other layer quantized.</p>"
                                                          : " (disable-one not run: --sensitivity-runs enable-one).</p>");
  if (r.plan.ran) {
    const auto& p = r.plan;
    out += "<div id=\"plan\"><h3>Plan</h3><p>" + std::string(p.reached ? "Target reached: " : "<b>Target not reached</b>: ") +
           svg::escape(show(p.achieved_output_sqnr_db)) + " (target " + format_db(p.target_sqnr_db) + " dB) with " +
           std::to_string(p.keep_float.size()) + (p.keep_float.size() == 1 ? " layer" : " layers") + " kept " +
           (p.keep_as == "float" ? "in float" : "at int8") + ", " +
           format_db(100.0 * p.quantized_weight_fraction) + "% of the weights quantized. " + svg::escape(p.note) + ".</p>";
    out += "<p>The plan's curve is beside the overview chart.</p>";
    if (!p.keep_float.empty()) {
      out += "<p>Keep: ";
      for (size_t i = 0; i < p.keep_float.size(); ++i) out += (i ? ", " : "") + std::string("<code>") + svg::escape(p.keep_float[i]) + "</code>";
      out += "</p>";
    }
    if (const std::string py = plan_python(p); !py.empty()) out += "<pre>" + svg::escape(py) + "</pre>";
    out += "</div>";
  }
  out += bars_svg(r, top);
  return out + "</section>\n";
}

std::string plan_curve_html(const Report& r) {
  return r.plan.ran ? curve_svg(r, scale_top(r)) : std::string();
}

double sensitivity_scale_db(const Report& r) { return scale_top(r); }

std::string plan_finding(const Report& r) {
  if (!r.plan.ran || r.plan.reached) return "";
  return "plan: the target " + format_db(r.plan.target_sqnr_db) + " dB is not reached under " + r.plan.scheme +
         " (best: " + show(r.plan.achieved_output_sqnr_db) + " with " + std::to_string(r.plan.keep_float.size()) +
         (r.plan.keep_float.size() == 1 ? " layer kept)" : " layers kept)");
}

}  // namespace qreport::report
