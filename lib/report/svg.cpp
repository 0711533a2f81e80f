#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace qreport::report::svg {
namespace {

constexpr double kWidth = 760, kHeight = 240, kLeft = 64, kRight = 16, kTop = 28, kBottom = 36;
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
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    for (size_t c = 0; c < s.lo.size() && c < s.hi.size(); ++c) {
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
  for (size_t i = 0; i < ch.values.size(); ++i) {
    const auto& v = ch.values[i];
    std::string label = i < ch.labels.size() ? ch.labels[i] : std::to_string(i);
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
  if (ch.values.size() <= 24)
    for (size_t i = 0; i < ch.labels.size(); ++i)
      out += "<text x=\"" + num(kLeft + (i + 0.5) * slot) + "\" y=\"" + num(kHeight - kBottom + 14) +
             "\" text-anchor=\"middle\" class=\"tk\">" + escape(ch.labels[i]) + "</text>";
  return out + "</svg>";
}

}  // namespace qreport::report::svg
