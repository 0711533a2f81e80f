#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace qreport::report::svg {
namespace {

constexpr double kWidth = 760, kHeight = 240, kLeft = 64, kRight = 16, kTop = 28, kBottom = 36;
// Above this many channels or modules a chart draws lines and marks only the alarms: one element, with
// its hover text, per item would make the page megabytes for a 2048-channel layer.
constexpr size_t kMaxMarks = 128;
// Width of one character of the 10px tick font, to decide whether labels fit under their bars.
constexpr double kCharWidth = 5.6;
const char* kAlarm = "#d62728";
const char* kOk = "#1f77b4";

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string tick(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// Maps data values to the plot's y pixels.
struct YAxis {
  double lo, hi;
  bool log;
  double map(double v) const {
    double a = log ? std::log10(std::max(v, 1e-30)) : v;
    double l = log ? std::log10(lo) : lo, h = log ? std::log10(hi) : hi;
    double t = h > l ? (a - l) / (h - l) : 0.5;
    t = std::clamp(t, 0.0, 1.0);
    return kTop + (1.0 - t) * (kHeight - kTop - kBottom);
  }
};

std::string frame(const std::string& title, const YAxis& y, const std::string& y_label) {
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) + "\" height=\"" +
                  num(kHeight) + "\" viewBox=\"0 0 " + num(kWidth) + " " + num(kHeight) +
                  "\" role=\"img\" class=\"chart\"><title>" + escape(title) + "</title>";
  s += "<text x=\"" + num(kLeft) + "\" y=\"18\" class=\"ct\">" + escape(title) + "</text>";
  s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(kTop) + "\" x2=\"" + num(kLeft) + "\" y2=\"" +
       num(kHeight - kBottom) + "\" stroke=\"#444\"/>";
  s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(kHeight - kBottom) + "\" x2=\"" + num(kWidth - kRight) +
       "\" y2=\"" + num(kHeight - kBottom) + "\" stroke=\"#444\"/>";
  for (double v : {y.lo, y.log ? std::sqrt(y.lo * y.hi) : (y.lo + y.hi) / 2, y.hi}) {
    double py = y.map(v);
    s += "<text x=\"" + num(kLeft - 4) + "\" y=\"" + num(py + 4) + "\" text-anchor=\"end\" class=\"tk\">" + tick(v) +
         "</text>";
  }
  if (!y_label.empty())
    s += "<text x=\"12\" y=\"" + num((kTop + kHeight - kBottom) / 2) + "\" class=\"tk\" transform=\"rotate(-90 12 " +
         num((kTop + kHeight - kBottom) / 2) + ")\" text-anchor=\"middle\">" + escape(y_label) + "</text>";
  return s;
}

}  // namespace

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string range_chart(const std::string& title, const std::vector<RangeSeries>& series) {
  double lo = INFINITY, hi = -INFINITY;
  size_t channels = 0;
  for (const auto& s : series) {
    channels = std::max(channels, s.lo.size());
    for (size_t c = 0; c < s.lo.size(); ++c) {
      if (s.lo[c] && std::isfinite(*s.lo[c])) lo = std::min(lo, *s.lo[c]);
      if (c < s.hi.size() && s.hi[c] && std::isfinite(*s.hi[c])) hi = std::max(hi, *s.hi[c]);
    }
  }
  if (!(lo < hi)) {
    lo = std::isfinite(lo) ? lo - 1 : -1;
    hi = lo + 2;
  }
  YAxis y{lo, hi, false};
  std::string out = frame(title, y, "value");
  if (lo < 0 && hi > 0)
    out += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(y.map(0)) + "\" x2=\"" + num(kWidth - kRight) + "\" y2=\"" +
           num(y.map(0)) + "\" stroke=\"#999\" stroke-dasharray=\"3 3\"/>";
  const double slot = (kWidth - kLeft - kRight) / std::max<size_t>(channels, 1);
  const double bar = std::max(0.5, slot / (series.size() + 1));
  const bool dense = channels > kMaxMarks;
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    if (dense) {  // one band per series (hi forward, lo back): a few KB whatever the channel count
      std::string d;
      for (size_t c = 0; c < s.hi.size(); ++c)
        if (s.hi[c] && std::isfinite(*s.hi[c]))
          d += (d.empty() ? "M" : "L") + num(kLeft + (c + 0.5) * slot) + " " + num(y.map(*s.hi[c]));
      for (size_t c = s.lo.size(); c-- > 0;)
        if (s.lo[c] && std::isfinite(*s.lo[c])) d += "L" + num(kLeft + (c + 0.5) * slot) + " " + num(y.map(*s.lo[c]));
      if (!d.empty())
        out += "<path d=\"" + d + "Z\" fill=\"" + s.color + "\" fill-opacity=\"0.45\" stroke=\"" + s.color +
               "\" stroke-width=\"0.5\"><title>" + escape(s.name) + ": per-channel [min, max]</title></path>";
    }
    for (size_t c = 0; !dense && c < s.lo.size() && c < s.hi.size(); ++c) {
      if (!s.lo[c] || !s.hi[c] || !std::isfinite(*s.lo[c]) || !std::isfinite(*s.hi[c])) continue;
      double x = kLeft + c * slot + (k + 0.5) * bar, top = y.map(*s.hi[c]), bottom = y.map(*s.lo[c]);
      out += "<rect x=\"" + num(x) + "\" y=\"" + num(top) + "\" width=\"" + num(bar) + "\" height=\"" +
             num(std::max(1.0, bottom - top)) + "\" fill=\"" + s.color + "\"><title>" + escape(s.name) + " channel " +
             std::to_string(c) + ": [" + tick(*s.lo[c]) + ", " + tick(*s.hi[c]) + "]</title></rect>";
    }
    out += "<rect x=\"" + num(kLeft + 8 + 150 * k) + "\" y=\"" + num(kHeight - 14) +
           "\" width=\"10\" height=\"10\" fill=\"" + s.color + "\"/><text x=\"" + num(kLeft + 22 + 150 * k) +
           "\" y=\"" + num(kHeight - 5) + "\" class=\"tk\">" + escape(s.name) + "</text>";
  }
  out += "<text x=\"" + num(kWidth - kRight) + "\" y=\"" + num(kHeight - 5) + "\" text-anchor=\"end\" class=\"tk\">" +
         std::to_string(channels) + " channels</text></svg>";
  return out;
}

std::string bar_chart(const BarChart& ch) {
  double lo = ch.log_scale ? INFINITY : 0.0, hi = ch.threshold.value_or(ch.log_scale ? 1.0 : 0.0);
  for (const auto& v : ch.values) {
    if (!v || !std::isfinite(*v)) continue;
    if (ch.log_scale && *v <= 0) continue;
    hi = std::max(hi, *v);
    lo = std::min(lo, *v);
  }
  if (ch.log_scale) {
    if (!std::isfinite(lo)) lo = 0.1;
    if (ch.threshold) lo = std::min(lo, *ch.threshold);
    lo = std::pow(10.0, std::floor(std::log10(lo)));
    hi = std::pow(10.0, std::ceil(std::log10(std::max(hi, lo * 10))));
  } else if (!(hi > lo)) {
    hi = lo + 1;
  }
  YAxis y{lo, hi, ch.log_scale};
  std::string out = frame(ch.title, y, ch.y_label);
  const double slot = (kWidth - kLeft - kRight) / std::max<size_t>(ch.values.size(), 1);
  const double base = y.map(lo);
  const bool dense = ch.values.size() > kMaxMarks;
  if (dense) {  // a line through every value; only the alarms get a mark and a hover text
    std::string d;
    for (size_t i = 0; i < ch.values.size(); ++i) {
      const auto& v = ch.values[i];
      if (!v || !std::isfinite(*v) || (ch.log_scale && *v <= 0)) continue;
      d += (d.empty() ? "M" : "L") + num(kLeft + (i + 0.5) * slot) + " " + num(y.map(*v));
    }
    if (!d.empty()) out += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + std::string(kOk) + "\" stroke-width=\"1\"/>";
  }
  for (size_t i = 0; i < ch.values.size(); ++i) {
    const auto& v = ch.values[i];
    std::string label = i < ch.labels.size() ? ch.labels[i] : std::to_string(i);
    if (dense) {
      if (!v || !std::isfinite(*v) || !ch.threshold || (ch.above_is_bad ? !(*v > *ch.threshold) : !(*v <= *ch.threshold)))
        continue;
      out += "<circle cx=\"" + num(kLeft + (i + 0.5) * slot) + "\" cy=\"" + num(y.map(*v)) + "\" r=\"3\" fill=\"" +
             kAlarm + "\"><title>" + escape(label) + ": " + tick(*v) + "</title></circle>";
      continue;
    }
    if (!v || !std::isfinite(*v)) {
      out += "<text x=\"" + num(kLeft + (i + 0.5) * slot) + "\" y=\"" + num(base - 4) +
             "\" text-anchor=\"middle\" class=\"na\">n/a<title>" + escape(label) + ": no value</title></text>";
      continue;
    }
    bool bad = ch.threshold && (ch.above_is_bad ? *v > *ch.threshold : *v <= *ch.threshold);
    double top = y.map(*v);
    out += "<rect x=\"" + num(kLeft + i * slot + slot * 0.1) + "\" y=\"" + num(top) + "\" width=\"" +
           num(std::max(0.5, slot * 0.8)) + "\" height=\"" + num(std::max(1.0, base - top)) + "\" fill=\"" +
           (bad ? kAlarm : kOk) + "\"><title>" + escape(label) + ": " + tick(*v) + "</title></rect>";
  }
  if (ch.threshold) {
    double ty = y.map(*ch.threshold);
    out += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(ty) + "\" x2=\"" + num(kWidth - kRight) + "\" y2=\"" +
           num(ty) + "\" stroke=\"#333\" stroke-dasharray=\"6 3\"/><text x=\"" + num(kWidth - kRight) + "\" y=\"" +
           num(ty - 4) + "\" text-anchor=\"end\" class=\"tk\">" + escape(ch.threshold_label) + "</text>";
  }
  // Labels only where the longest fits under its bar; otherwise each bar's hover text names it.
  size_t longest = 0;
  for (const auto& l : ch.labels) longest = std::max(longest, l.size());
  if (static_cast<double>(longest) * kCharWidth > slot - 2)
    out += "<text x=\"" + num(kWidth - kRight) + "\" y=\"" + num(kHeight - kBottom + 14) +
           "\" text-anchor=\"end\" class=\"tk\">" + std::to_string(ch.values.size()) + " " +
           escape(ch.x_label) + (dense ? " (alarms marked; hover a mark for its name)" : " (hover a bar for its name)") +
           "</text>";
  else
    for (size_t i = 0; i < ch.labels.size(); ++i)
      out += "<text x=\"" + num(kLeft + (i + 0.5) * slot) + "\" y=\"" + num(kHeight - kBottom + 14) +
             "\" text-anchor=\"middle\" class=\"tk\">" + escape(ch.labels[i]) + "</text>";
  return out + "</svg>";
}

std::string overview_chart(const OverviewChart& ch) {
  constexpr double W = 1040, left = 96, right = 16, top = 30, plot_h = 220, row_h = 13;
  const double rows_top = top + plot_h + 16;
  const double H = rows_top + row_h * static_cast<double>(ch.marker_names.size()) + 34;
  const size_t n = std::max<size_t>(ch.layers.size(), 1);
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& l : ch.layers)
    for (const auto& v : {l.weight_default, l.weight_best, l.input_default, l.input_best})
      if (v && std::isfinite(*v)) lo = std::min(lo, *v), hi = std::max(hi, *v);
  if (!(lo <= hi)) lo = 0, hi = 50;
  lo = std::floor(lo / 10) * 10;
  hi = std::max(lo + 10, std::ceil(hi / 10) * 10);
  const double step = hi - lo > 80 ? 20 : 10;
  auto map = [&](double v) { return top + (1.0 - (v - lo) / (hi - lo)) * plot_h; };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) + "\" height=\"" + num(H) +
                  "\" viewBox=\"0 0 " + num(W) + " " + num(H) + "\" role=\"img\" class=\"chart\" id=\"overview-chart\"><title>" +
                  escape(ch.title) + "</title>";
  s += "<text x=\"" + num(left) + "\" y=\"18\" class=\"ct\">" + escape(ch.title) + "</text>";
  for (double v = lo; v <= hi + 1e-9; v += step) {
    s += "<line x1=\"" + num(left) + "\" y1=\"" + num(map(v)) + "\" x2=\"" + num(W - right) + "\" y2=\"" + num(map(v)) +
         "\" stroke=\"#e4e4e4\"/><text x=\"" + num(left - 4) + "\" y=\"" + num(map(v) + 4) +
         "\" text-anchor=\"end\" class=\"tk\">" + tick(v) + "</text>";
  }
  s += "<text x=\"12\" y=\"" + num(top + plot_h / 2) + "\" class=\"tk\" transform=\"rotate(-90 12 " +
       num(top + plot_h / 2) + ")\" text-anchor=\"middle\">SQNR (dB)</text>";
  const double slot = (W - left - right) / static_cast<double>(n);
  const double r = std::clamp(slot * 0.3, 1.2, 3.5), off = std::min(slot * 0.18, 4.0);
  const char* kWeight = "#ff7f0e";
  auto pair = [&](double x, const std::optional<double>& d, const std::optional<double>& b, const char* color) {
    std::string out;
    if (d && b && std::isfinite(*d) && std::isfinite(*b))
      out += "<line x1=\"" + num(x) + "\" y1=\"" + num(map(*d)) + "\" x2=\"" + num(x) + "\" y2=\"" + num(map(*b)) +
             "\" stroke=\"" + color + "\"/>";
    if (d && std::isfinite(*d))
      out += "<circle cx=\"" + num(x) + "\" cy=\"" + num(map(*d)) + "\" r=\"" + num(r) + "\" fill=\"#fff\" stroke=\"" +
             color + "\"/>";
    if (b && std::isfinite(*b))
      out += "<circle cx=\"" + num(x) + "\" cy=\"" + num(map(*b)) + "\" r=\"" + num(r) + "\" fill=\"" + color + "\"/>";
    return out;
  };
  static const char* kMarkerColors[] = {"#9467bd", "#8c564b", "#e377c2", "#d62728", "#17becf", "#7f7f7f"};
  for (size_t k = 0; k < ch.marker_names.size(); ++k)
    s += "<text x=\"" + num(left - 4) + "\" y=\"" + num(rows_top + row_h * k + 9) + "\" text-anchor=\"end\" class=\"tk\">" +
         escape(ch.marker_names[k]) + "</text>";
  for (size_t i = 0; i < ch.layers.size(); ++i) {
    const auto& l = ch.layers[i];
    const double x = left + (static_cast<double>(i) + 0.5) * slot;
    s += pair(x - off, l.weight_default, l.weight_best, kWeight);
    s += pair(x + off, l.input_default, l.input_best, kOk);
    for (size_t k = 0; k < l.markers.size() && k < ch.marker_names.size(); ++k)
      if (l.markers[k])
        s += "<rect x=\"" + num(x - std::max(1.0, slot * 0.35)) + "\" y=\"" + num(rows_top + row_h * k + 1) +
             "\" width=\"" + num(std::max(2.0, slot * 0.7)) + "\" height=\"9\" fill=\"" + kMarkerColors[k % 6] + "\"/>";
  }
  // Hover targets last, so they sit on top: the whole column names its layer.
  for (size_t i = 0; i < ch.layers.size(); ++i)
    s += "<rect x=\"" + num(left + static_cast<double>(i) * slot) + "\" y=\"" + num(top) + "\" width=\"" + num(slot) +
         "\" height=\"" + num(rows_top + row_h * ch.marker_names.size() - top) +
         "\" fill=\"#000\" fill-opacity=\"0\" class=\"col\"><title>" + escape(ch.layers[i].hover) + "</title></rect>";
  const double ly = H - 10;
  s += "<text x=\"" + num(left) + "\" y=\"" + num(ly) + "\" class=\"tk\">" + std::to_string(ch.layers.size()) +
       " layers in graph order (hover a column for its name and values)</text>";
  s += "<circle cx=\"" + num(W - 390) + "\" cy=\"" + num(ly - 4) + "\" r=\"3.5\" fill=\"" + kWeight +
       "\"/><text x=\"" + num(W - 382) + "\" y=\"" + num(ly) + "\" class=\"tk\">weight</text>";
  s += "<circle cx=\"" + num(W - 330) + "\" cy=\"" + num(ly - 4) + "\" r=\"3.5\" fill=\"" + std::string(kOk) +
       "\"/><text x=\"" + num(W - 322) + "\" y=\"" + num(ly) + "\" class=\"tk\">input</text>";
  s += "<circle cx=\"" + num(W - 275) + "\" cy=\"" + num(ly - 4) + "\" r=\"3.5\" fill=\"#fff\" stroke=\"#444\"/><text x=\"" +
       num(W - 267) + "\" y=\"" + num(ly) + "\" class=\"tk\">default</text>";
  s += "<circle cx=\"" + num(W - 215) + "\" cy=\"" + num(ly - 4) + "\" r=\"3.5\" fill=\"#444\"/><text x=\"" +
       num(W - 207) + "\" y=\"" + num(ly) + "\" class=\"tk\">recommended (best)</text>";
  return s + "</svg>";
}

}  // namespace qreport::report::svg
