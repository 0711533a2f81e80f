#include "report/svg.h"

#include "report/json_text.h"  // utf8_length

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace qreport::report::svg {
namespace {

constexpr double kWidth = 760, kHeight = 240, kLeft = 64, kRight = 16, kTop = 28, kBottom = 36;
// Above this many channels or modules a chart draws lines and marks only the alarms: one element, with
// its hover text, per item would make the page megabytes for a 2048-channel layer.
constexpr size_t kMaxMarks = 128;
// Dense charts draw at most this many buckets of items across the plot (one per 2 px), each the envelope
// (min and max) of its items: what a screen shows of 3072 channels, in a few KB instead of 170.
constexpr size_t kMaxBuckets = 340;
// Width of one character of the 10px tick font, to decide whether labels fit under their bars.
constexpr double kCharWidth = 5.6;
const char* kAlarm = "#d62728";
const char* kOk = "#1f77b4";
const char* kInf = "#555";  // infinite values: no alarm colour, they are not measured against the threshold

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

// An axis tick, at most 7 characters ("1e+39" -> "1e39", "0.000123" -> "1.2e-4"), so that the ticks
// right-aligned at kLeft - 4 never reach the rotated axis label at x = 12.
std::string short_tick(double v) {
  std::string s = tick(v);
  if (s.size() <= 7 && s.find('e') == std::string::npos) return s;
  char buf[32];
  std::snprintf(buf, sizeof buf, v > 0 ? "%.1e" : "%.0e", v);
  std::string m = buf, mant = m.substr(0, m.find('e')), exp = m.substr(m.find('e') + 1);
  if (mant.size() > 2 && mant.compare(mant.size() - 2, 2, ".0") == 0) mant.resize(mant.size() - 2);
  const bool neg = exp[0] == '-';
  exp = exp.substr(1);
  while (exp.size() > 1 && exp[0] == '0') exp.erase(0, 1);
  return mant + "e" + (neg ? "-" : "") + exp;
}

// A chart title within the chart's width (13px bold: at most about 8.6 px a character), cut from the
// left: a module name's end tells layers apart. The whole title is the chart's hover text.
std::string fit_title(const std::string& title) {
  const size_t max_chars = static_cast<size_t>((kWidth - kLeft - 8) / 8.6);
  size_t chars = 0;
  for (unsigned char c : title) chars += (c & 0xC0) != 0x80;
  if (chars <= max_chars) return title;
  size_t cut = 0;
  for (size_t drop = chars - (max_chars - 1); drop > 0; --drop) {
    ++cut;
    while (cut < title.size() && (static_cast<unsigned char>(title[cut]) & 0xC0) == 0x80) ++cut;
  }
  return "…" + title.substr(cut);
}

// An upward triangle marking an infinite value at the top of the plot.
std::string inf_marker(double x, const char* color, const std::string& hover) {
  return "<path d=\"M" + num(x - 4) + " " + num(kTop + 7) + "L" + num(x) + " " + num(kTop) + "L" + num(x + 4) + " " +
         num(kTop + 7) + "Z\" fill=\"" + color + "\" class=\"inf\"><title>" + escape(hover) + "</title></path>";
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
  s += "<text x=\"" + num(kLeft) + "\" y=\"18\" class=\"ct\">" + escape(fit_title(title)) + "</text>";
  s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(kTop) + "\" x2=\"" + num(kLeft) + "\" y2=\"" +
       num(kHeight - kBottom) + "\" stroke=\"#444\"/>";
  s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(kHeight - kBottom) + "\" x2=\"" + num(kWidth - kRight) +
       "\" y2=\"" + num(kHeight - kBottom) + "\" stroke=\"#444\"/>";
  // Log axes: the powers of ten (at most 5 of them, evenly skipped); linear axes: both ends and the middle.
  std::vector<double> ticks;
  if (y.log) {
    const int a = static_cast<int>(std::lround(std::log10(y.lo))), b = static_cast<int>(std::lround(std::log10(y.hi)));
    const int every = std::max(1, (b - a + 3) / 4);
    for (int e = a; e <= b; e += every) ticks.push_back(std::pow(10.0, e));
  } else {
    ticks = {y.lo, (y.lo + y.hi) / 2, y.hi};
  }
  for (double v : ticks) {
    double py = y.map(v);
    s += "<text x=\"" + num(kLeft - 4) + "\" y=\"" + num(py + 4) + "\" text-anchor=\"end\" class=\"tk\">" +
         short_tick(v) + "</text>";
  }
  if (!y_label.empty())
    s += "<text x=\"12\" y=\"" + num((kTop + kHeight - kBottom) / 2) + "\" class=\"tk\" transform=\"rotate(-90 12 " +
         num((kTop + kHeight - kBottom) / 2) + ")\" text-anchor=\"middle\">" + escape(y_label) + "</text>";
  return s;
}

}  // namespace

std::string escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {  // a valid UTF-8 sequence as it is; a byte of none as U+FFFD, as a browser would show it
      const size_t n = utf8_length(text, i);
      if (n == 0) {
        out += "&#xFFFD;";
        ++i;
      } else {
        out.append(text, i, n);
        i += n;
      }
      continue;
    }
    ++i;
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\t': case '\n': case '\r': out += static_cast<char>(c); break;
      default: {
        // Other C0 controls and DEL are not allowed in an HTML page, raw or as a reference: their
        // Control Pictures symbol (U+2400 + c, U+2421 for DEL) shows which one the name holds.
        if (c < 0x20 || c == 0x7f) {
          char ref[16];
          std::snprintf(ref, sizeof ref, "&#x%X;", c == 0x7f ? 0x2421u : 0x2400u + c);
          out += ref;
        } else {
          out += static_cast<char>(c);
        }
      }
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
    if (dense) {  // one band per series (hi forward, lo back) over buckets of channels: a few KB at most
      std::string d;
      const size_t buckets = std::min(kMaxBuckets, channels);
      std::vector<std::string> back;
      for (size_t b = 0; b < buckets; ++b) {
        double top = -INFINITY, bottom = INFINITY;
        for (size_t c = b * channels / buckets; c < (b + 1) * channels / buckets; ++c) {
          if (c < s.hi.size() && s.hi[c] && std::isfinite(*s.hi[c])) top = std::max(top, *s.hi[c]);
          if (c < s.lo.size() && s.lo[c] && std::isfinite(*s.lo[c])) bottom = std::min(bottom, *s.lo[c]);
        }
        const double x = kLeft + (b + 0.5) * (kWidth - kLeft - kRight) / buckets;
        if (std::isfinite(top)) d += (d.empty() ? "M" : "L") + num(x) + " " + num(y.map(top));
        if (std::isfinite(bottom)) back.push_back("L" + num(x) + " " + num(y.map(bottom)));
      }
      for (size_t i = back.size(); i-- > 0;) d += back[i];
      if (!d.empty() && d[0] == 'L') d[0] = 'M';
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
  size_t infinite = 0, missing = 0;
  if (dense) {  // a line through the values' envelope per bucket; only the alarms get a mark and a hover text
    std::string d;
    const size_t n = ch.values.size(), buckets = std::min(kMaxBuckets, n);
    for (size_t b = 0; b < buckets; ++b) {
      double top = -INFINITY, bottom = INFINITY;
      for (size_t i = b * n / buckets; i < (b + 1) * n / buckets; ++i) {
        const auto& v = ch.values[i];
        if (!v || !std::isfinite(*v) || (ch.log_scale && *v <= 0)) continue;
        top = std::max(top, *v), bottom = std::min(bottom, *v);
      }
      if (!std::isfinite(top)) continue;
      const double x = kLeft + (b + 0.5) * (kWidth - kLeft - kRight) / buckets;
      d += (d.empty() ? "M" : "L") + num(x) + " " + num(y.map(bottom));
      if (top > bottom) d += "L" + num(x) + " " + num(y.map(top));
    }
    if (!d.empty()) out += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + std::string(kOk) + "\" stroke-width=\"1\"/>";
  }
  for (size_t i = 0; i < ch.values.size(); ++i) {
    const auto& v = ch.values[i];
    std::string label = i < ch.labels.size() ? ch.labels[i] : std::to_string(i);
    const bool inf = v && std::isinf(*v) && *v > 0;
    if (inf) {  // never scales the axis: a marker at the top, "inf" above the bar's place when it fits
      const double x = kLeft + (i + 0.5) * slot;
      out += inf_marker(x, kInf, label + ": inf" + (ch.inf_note.empty() ? "" : " (" + ch.inf_note + ")"));
      if (!dense && slot >= 3 * kCharWidth + 2)
        out += "<text x=\"" + num(x) + "\" y=\"" + num(kTop + 18) + "\" text-anchor=\"middle\" class=\"tk\">inf</text>";
      ++infinite;
      continue;
    }
    if (dense) {
      if (!v || !std::isfinite(*v) || !ch.threshold || (ch.above_is_bad ? !(*v > *ch.threshold) : !(*v <= *ch.threshold)))
        continue;
      out += "<circle cx=\"" + num(kLeft + (i + 0.5) * slot) + "\" cy=\"" + num(y.map(*v)) + "\" r=\"3\" fill=\"" +
             kAlarm + "\"><title>" + escape(label) + ": " + tick(*v) + "</title></circle>";
      continue;
    }
    if (!v || !std::isfinite(*v)) {  // "n/a" where it fits (3 characters of the 9px font), else a grey stub
      ++missing;
      if (slot >= 3 * 5.0 + 2)
        out += "<text x=\"" + num(kLeft + (i + 0.5) * slot) + "\" y=\"" + num(base - 4) +
               "\" text-anchor=\"middle\" class=\"na\">n/a<title>" + escape(label) + ": no value</title></text>";
      else
        out += "<rect x=\"" + num(kLeft + i * slot + slot * 0.1) + "\" y=\"" + num(base - 3) + "\" width=\"" +
               num(std::max(0.5, slot * 0.8)) + "\" height=\"3\" fill=\"#bbb\"><title>" + escape(label) +
               ": no value</title></rect>";
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
  // The legend of what has no bar: infinite values (a marker at the top) and missing ones.
  std::string legend;
  if (infinite)
    legend += "<path d=\"M" + num(kLeft) + " " + num(kHeight - 5) + "L" + num(kLeft + 4) + " " + num(kHeight - 12) + "L" +
              num(kLeft + 8) + " " + num(kHeight - 5) + "Z\" fill=\"" + kInf + "\"/><text x=\"" + num(kLeft + 12) +
              "\" y=\"" + num(kHeight - 5) + "\" class=\"tk\">inf: " + std::to_string(infinite) + " " +
              escape(ch.x_label) + (ch.inf_note.empty() ? "" : ", " + escape(ch.inf_note)) + "</text>";
  if (missing)
    legend += std::string("<text x=\"") + num(kWidth - kRight) + "\" y=\"" + num(kHeight - 5) +
              "\" text-anchor=\"end\" class=\"tk\">n/a (grey): " + std::to_string(missing) + " " + escape(ch.x_label) +
              " without a value</text>";
  out += legend;
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

namespace {

// The colour of a local output SQNR cell, by the bands of docs/quantization-error.md's rough guide (below
// 15 dB not usable as configured, below 25 a likely source of accuracy loss, above 40 rarely matters).
const char* sqnr_band_color(double db) {
  if (db < 15) return "#d73027";
  if (db < 25) return "#fc8d59";
  if (db < 30) return "#fee08b";
  if (db < 40) return "#d9ef8b";
  return "#91cf60";
}

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string whole_db(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return std::string(buf) == "-0" ? "0" : buf;
}

}  // namespace

std::string overview_chart(const OverviewChart& ch) {
  constexpr double right = 16, top = 30, plot_h = 220, row_h = 13, band_h = 56;
  // Each column's layer name is written under it, rotated: a column is at least kMinSlot wide (a line of
  // the 10px font), so that no two names overlap; past the width budget the chart grows wider (and scrolls).
  constexpr double kMinSlot = 14;
  // A scheme cell writes its figure (whole dB, the 8px font) where the column has room for three digits.
  constexpr double kValueSlot = 20;
  // Names are written whole up to kMaxLabel characters (ViT-B/16's longest, ...encoder_layer_11.self_attention.
  // out_proj, has 55); longer ones keep their first and last 31, where the layers' indices usually are.
  constexpr size_t kMaxLabel = 64;
  const bool sens = !ch.sensitivity_label.empty();
  const bool any_kept = std::any_of(ch.layers.begin(), ch.layers.end(), [](const OverviewLayer& l) { return l.kept; });
  // The row labels sit left of the plot, right-aligned: the margin fits the longest (a scheme's name).
  size_t label_chars = 0;
  for (const auto& v : {&ch.marker_names, &ch.scheme_names})
    for (const auto& name : *v) label_chars = std::max(label_chars, code_points(name));
  if (sens) label_chars = std::max({label_chars, code_points(ch.sensitivity_label), size_t{12}});
  const double left = std::max(96.0, static_cast<double>(label_chars) * kCharWidth + 10);
  const size_t n = std::max<size_t>(ch.layers.size(), 1);
  const double slot = std::max(kMinSlot, (ch.width_budget - left - right) / static_cast<double>(n));
  // The legend's longest line needs about 420 px from the plot's left edge.
  const double W = std::max(left + right + slot * static_cast<double>(n), left + 420);
  const double rows_top = top + plot_h + 16;
  const double schemes_top = rows_top + row_h * static_cast<double>(ch.marker_names.size());
  const double band_top = schemes_top + row_h * static_cast<double>(ch.scheme_names.size()) + (sens ? 4 : 0);
  const double kept_top = band_top + (sens ? band_h + 4 : 0);
  const double labels_top = kept_top + (any_kept ? row_h : 0) + 6;
  std::vector<std::string> names;
  size_t longest = 0;
  for (const auto& l : ch.layers) {
    std::string name = l.name;
    size_t chars = code_points(name);
    if (chars > kMaxLabel) {
      constexpr size_t kKeep = (kMaxLabel - 2) / 2;
      size_t head = 0, tail = name.size();
      for (size_t k = 0; k < kKeep; ++k) {  // kKeep code points from each end
        do ++head; while (head < name.size() && (static_cast<unsigned char>(name[head]) & 0xC0) == 0x80);
        do --tail; while (tail > 0 && (static_cast<unsigned char>(name[tail]) & 0xC0) == 0x80);
      }
      name = name.substr(0, head) + "…" + name.substr(tail);
      chars = 2 * kKeep + 1;
    }
    longest = std::max(longest, chars);
    names.push_back(std::move(name));
  }
  const double labels_h = static_cast<double>(longest) * kCharWidth + 6;
  const bool legend2 = !ch.scheme_names.empty() || sens;
  const double H = labels_top + labels_h + 24 + (legend2 ? 15.0 * (1 + !ch.scheme_names.empty() + sens) : 0);
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
  // A chart narrowed beside the plan's curve starts its title at the left edge: it would not fit after the margin.
  s += "<text x=\"" + num(legend2 ? 4 : left) + "\" y=\"18\" class=\"ct\">" + escape(ch.title) + "</text>";
  for (double v = lo; v <= hi + 1e-9; v += step) {
    s += "<line x1=\"" + num(left) + "\" y1=\"" + num(map(v)) + "\" x2=\"" + num(W - right) + "\" y2=\"" + num(map(v)) +
         "\" stroke=\"#e4e4e4\"/><text x=\"" + num(left - 4) + "\" y=\"" + num(map(v) + 4) +
         "\" text-anchor=\"end\" class=\"tk\">" + tick(v) + "</text>";
  }
  s += "<text x=\"12\" y=\"" + num(top + plot_h / 2) + "\" class=\"tk\" transform=\"rotate(-90 12 " +
       num(top + plot_h / 2) + ")\" text-anchor=\"middle\">SQNR (dB)</text>";
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
  auto row_label = [&](double y, const std::string& text, const char* extra = "") {
    return "<text x=\"" + num(left - 4) + "\" y=\"" + num(y) + "\" text-anchor=\"end\" class=\"tk\"" + extra + ">" +
           escape(text) + "</text>";
  };
  static const char* kMarkerColors[] = {"#9467bd", "#8c564b", "#e377c2", "#d62728", "#17becf", "#7f7f7f"};
  for (size_t k = 0; k < ch.marker_names.size(); ++k) s += row_label(rows_top + row_h * k + 9, ch.marker_names[k]);
  // Scheme rows: a faint band per row (a blank cell is a layer the scheme leaves in float).
  for (size_t k = 0; k < ch.scheme_names.size(); ++k) {
    const double y = schemes_top + row_h * k;
    s += row_label(y + 9, ch.scheme_names[k]) + "<rect x=\"" + num(left) + "\" y=\"" + num(y) + "\" width=\"" +
         num(slot * static_cast<double>(ch.layers.size())) + "\" height=\"11\" fill=\"#f4f4f4\"/>";
  }
  // The sensitivity band: bars from its bottom (0 dB) to the enable-one figure, on 0..sensitivity_top.
  const double band_bottom = band_top + band_h;
  auto band_y = [&](double db) { return band_bottom - std::clamp(db / ch.sensitivity_top, 0.0, 1.0) * band_h; };
  if (sens) {
    s += row_label(band_top + 9, "sensitivity") + row_label(band_top + 20, ch.sensitivity_label) +
         row_label(band_top + 31, "0–" + whole_db(ch.sensitivity_top) + " dB");
    s += "<line x1=\"" + num(left) + "\" y1=\"" + num(band_bottom) + "\" x2=\"" + num(W - right) + "\" y2=\"" +
         num(band_bottom) + "\" stroke=\"#bbb\"/><line x1=\"" + num(left) + "\" y1=\"" + num(band_top) + "\" x2=\"" +
         num(W - right) + "\" y2=\"" + num(band_top) + "\" stroke=\"#e4e4e4\"/>";
    if (ch.target_db)
      s += row_label(band_top + 42, "target " + whole_db(*ch.target_db) + " dB", " fill=\"#d62728\"") + "<line x1=\"" +
           num(left) + "\" y1=\"" + num(band_y(*ch.target_db)) + "\" x2=\"" + num(W - right) + "\" y2=\"" +
           num(band_y(*ch.target_db)) + "\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>";
  }
  if (any_kept) s += row_label(kept_top + 9, "plan: keep");
  for (size_t i = 0; i < ch.layers.size(); ++i) {
    const auto& l = ch.layers[i];
    const double x = left + (static_cast<double>(i) + 0.5) * slot;
    s += pair(x - off, l.weight_default, l.weight_best, kWeight);
    s += pair(x + off, l.input_default, l.input_best, kOk);
    for (size_t k = 0; k < l.markers.size() && k < ch.marker_names.size(); ++k)
      if (l.markers[k])
        s += "<rect x=\"" + num(x - std::max(1.0, slot * 0.35)) + "\" y=\"" + num(rows_top + row_h * k + 1) +
             "\" width=\"" + num(std::max(2.0, slot * 0.7)) + "\" height=\"9\" fill=\"" + kMarkerColors[k % 6] + "\"/>";
    for (size_t k = 0; k < l.schemes.size() && k < ch.scheme_names.size(); ++k) {
      const auto& v = l.schemes[k];
      if (!v || !std::isfinite(*v)) continue;
      const double y = schemes_top + row_h * k;
      s += "<rect x=\"" + num(x - slot * 0.45) + "\" y=\"" + num(y) + "\" width=\"" + num(slot * 0.9) +
           "\" height=\"11\" fill=\"" + sqnr_band_color(*v) + "\"/>";
      if (slot >= kValueSlot)
        s += "<text x=\"" + num(x) + "\" y=\"" + num(y + 8.5) + "\" text-anchor=\"middle\" class=\"cv\">" + whole_db(*v) +
             "</text>";
    }
    if (sens && l.sensitivity) {
      // A null figure means no noise at all: the full bar.
      const double e = l.enable_db ? *l.enable_db : ch.sensitivity_top;
      const bool low = ch.target_db && l.enable_db && *l.enable_db < *ch.target_db;
      const double bw = std::max(2.0, slot * 0.6);
      s += "<rect x=\"" + num(x - bw / 2) + "\" y=\"" + num(band_y(e)) + "\" width=\"" + num(bw) + "\" height=\"" +
           num(band_bottom - band_y(e)) + "\" fill=\"" + (low ? kAlarm : kOk) + "\"/>";
      const double k = l.skip_db ? *l.skip_db : ch.sensitivity_top;
      if (ch.disable_one)
        s += "<line x1=\"" + num(x - slot * 0.45) + "\" y1=\"" + num(band_y(k)) + "\" x2=\"" + num(x + slot * 0.45) +
             "\" y2=\"" + num(band_y(k)) + "\" stroke=\"#222\" stroke-width=\"1.5\"/>";
    }
    if (l.kept)
      s += "<rect x=\"" + num(x - std::max(1.0, slot * 0.35)) + "\" y=\"" + num(kept_top + 1) + "\" width=\"" +
           num(std::max(2.0, slot * 0.7)) + "\" height=\"9\" fill=\"#222\"/>";
  }
  // The names, read upwards, ending under the last row; the baseline is offset so that the glyphs
  // (ascent about 7.5 px of the 10px font, descent 2.5; rotated, ascent points left) are centred on the column.
  for (size_t i = 0; i < names.size(); ++i) {
    const double x = left + (static_cast<double>(i) + 0.5) * slot + 2.5;
    s += "<text x=\"" + num(x) + "\" y=\"" + num(labels_top) + "\" text-anchor=\"end\" transform=\"rotate(-90 " + num(x) +
         " " + num(labels_top) + ")\" class=\"tk ln\">" + escape(names[i]) + "</text>";
  }
  // Hover targets last, so they sit on top: the whole column names its layer.
  for (size_t i = 0; i < ch.layers.size(); ++i)
    s += "<rect x=\"" + num(left + static_cast<double>(i) * slot) + "\" y=\"" + num(top) + "\" width=\"" + num(slot) +
         "\" height=\"" + num(labels_top + labels_h - top) +
         "\" fill=\"#000\" fill-opacity=\"0\" class=\"col\"><title>" + escape(ch.layers[i].hover) + "</title></rect>";
  // The legend: one line when the chart has only the SQNR plot (it is then at least width_budget wide);
  // with scheme rows or sensitivity bars, one line per part, so that a chart narrowed to sit beside the
  // plan's curve still holds it.
  const double ly = labels_top + labels_h + 14;
  s += "<text x=\"" + num(left) + "\" y=\"" + num(ly) + "\" class=\"tk\">" + std::to_string(ch.layers.size()) +
       " layers in graph order (hover a column for its values)</text>";
  const double kx = legend2 ? left : left + 340, ky = legend2 ? ly + 15 : ly;
  s += "<circle cx=\"" + num(kx) + "\" cy=\"" + num(ky - 4) + "\" r=\"3.5\" fill=\"" + kWeight +
       "\"/><text x=\"" + num(kx + 8) + "\" y=\"" + num(ky) + "\" class=\"tk\">weight</text>";
  s += "<circle cx=\"" + num(kx + 60) + "\" cy=\"" + num(ky - 4) + "\" r=\"3.5\" fill=\"" + std::string(kOk) +
       "\"/><text x=\"" + num(kx + 68) + "\" y=\"" + num(ky) + "\" class=\"tk\">input</text>";
  s += "<circle cx=\"" + num(kx + 115) + "\" cy=\"" + num(ky - 4) + "\" r=\"3.5\" fill=\"#fff\" stroke=\"#444\"/><text x=\"" +
       num(kx + 123) + "\" y=\"" + num(ky) + "\" class=\"tk\">default</text>";
  s += "<circle cx=\"" + num(kx + 175) + "\" cy=\"" + num(ky - 4) + "\" r=\"3.5\" fill=\"#444\"/><text x=\"" +
       num(kx + 183) + "\" y=\"" + num(ky) + "\" class=\"tk\">recommended (best)</text>";
  double y2 = ky;
  if (!ch.scheme_names.empty()) {
    y2 += 15;
    s += "<text x=\"" + num(left) + "\" y=\"" + num(y2) + "\" class=\"tk\">schemes, local output SQNR:</text>";
    double x = left + 156;
    const std::pair<double, const char*> bands[] = {{0, "<15"}, {15, "15–25"}, {25, "25–30"}, {30, "30–40"}, {40, "≥40 dB"}};
    for (const auto& [v, text] : bands) {
      s += "<rect x=\"" + num(x) + "\" y=\"" + num(y2 - 9) + "\" width=\"10\" height=\"10\" fill=\"" +
           sqnr_band_color(v) + "\"/><text x=\"" + num(x + 13) + "\" y=\"" + num(y2) + "\" class=\"tk\">" +
           escape(text) + "</text>";
      x += 13 + static_cast<double>(code_points(text)) * kCharWidth + 8;
    }
  }
  if (sens) {
    y2 += 15;
    s += "<text x=\"" + num(left) + "\" y=\"" + num(y2) + "\" class=\"tk\">sensitivity (model output SQNR): bar = only "
         "this layer quantized" + std::string(ch.disable_one ? ", tick = all but it" : "") + "</text>";
  }
  return s + "</svg>";
}

}  // namespace qreport::report::svg
