// The .qstats layout (docs/statistics.md): one dict, as torch.load returns it in Python. Float32
// statistics are stored as Python floats (float64 holds every float32 exactly) or float32 tensors, so a
// round trip gives back the same bits.
#include <torch/csrc/jit/serialization/pickle.h>
#include <ATen/ATen.h>

#include <cmath>

#include "calibration/calibration.h"
#include "common/errors.h"
#include "common/output_file.h"
#include "common/text.h"
#include "stats/stats.h"

namespace qreport::stats {
namespace {

using Dict = c10::impl::GenericDict;
using List = c10::impl::GenericList;
using observers::HistogramSummary;
using observers::MinMaxSummary;
using observers::PercentileSummary;
using observers::RangeSummary;

Dict dict() { return Dict(c10::StringType::get(), c10::AnyType::get()); }
List list() { return List(c10::AnyType::get()); }

at::Tensor floats(const std::vector<float>& v) {
  return at::from_blob(const_cast<float*>(v.data()), {static_cast<int64_t>(v.size())}, at::kFloat).clone();
}
at::Tensor ints(const std::vector<int32_t>& v) {
  return at::from_blob(const_cast<int32_t*>(v.data()), {static_cast<int64_t>(v.size())}, at::kInt).clone();
}

c10::IValue point_value(const StatsFile::Point& p) {
  Dict d = dict();
  d.insert("site", p.site);
  d.insert("side", p.side);
  d.insert("calls", p.stats.calls);
  if (p.stats.range) {
    const RangeSummary& r = *p.stats.range;
    Dict rd = dict();
    rd.insert("batches", r.batches);
    rd.insert("avg_range", static_cast<double>(r.avg_range));
    rd.insert("min", static_cast<double>(r.epoch_min));
    rd.insert("max", static_cast<double>(r.epoch_max));
    rd.insert("invalid", r.invalid);
    d.insert("range", rd);
  }
  List mm = list();
  for (const auto& [ch_axis, s] : p.stats.minmax) {
    Dict e = dict();
    e.insert("ch_axis", static_cast<int64_t>(ch_axis));
    e.insert("axis", static_cast<int64_t>(s.axis));
    e.insert("min", floats(s.min));
    e.insert("max", floats(s.max));
    e.insert("invalid", s.invalid);
    mm.push_back(e);
  }
  d.insert("minmax", mm);
  List pc = list();
  for (const auto& [key, s] : p.stats.percentile) {
    Dict e = dict();
    e.insert("ch_axis", static_cast<int64_t>(key.first));
    e.insert("q", static_cast<double>(key.second));
    e.insert("axis", static_cast<int64_t>(s.axis));
    e.insert("batches", s.batches);
    e.insert("avg_ratio", floats(s.avg_ratio));
    e.insert("batches_used", ints(s.batches_used));
    e.insert("constant_batches", ints(s.constant_batches));
    e.insert("invalid", s.invalid);
    pc.push_back(e);
  }
  d.insert("percentile", pc);
  if (p.stats.histogram) {
    const HistogramSummary& h = *p.stats.histogram;
    Dict e = dict();
    e.insert("batches", h.batches);
    e.insert("min_val", static_cast<double>(h.min_val));
    e.insert("max_val", static_cast<double>(h.max_val));
    e.insert("bins", kHistogramBins);
    e.insert("histogram", floats(h.histogram));
    e.insert("data_min", static_cast<double>(h.data_min));
    e.insert("data_max", static_cast<double>(h.data_max));
    e.insert("sum_squares", h.sum_squares);
    e.insert("count", h.count);
    e.insert("invalid", h.invalid);
    d.insert("histogram", e);
  }
  return d;
}

// Reading: every access checks the type it expects; a problem names the file and the key.
class Reader {
 public:
  explicit Reader(std::string name) : name_(std::move(name)) {}
  [[noreturn]] void bad(const std::string& why) const {
    throw InputError("statistics file " + name_ + " is not valid: " + why);
  }
  const c10::IValue& at(const Dict& d, const std::string& key) const {
    auto it = d.find(key);
    if (it == d.end()) bad("'" + key + "' is missing");
    return it->value();
  }
  bool has(const Dict& d, const std::string& key) const { return d.find(key) != d.end(); }
  Dict dict_at(const Dict& d, const std::string& key) const {
    const auto& v = at(d, key);
    if (!v.isGenericDict()) bad("'" + key + "' is not a dict");
    return v.toGenericDict();
  }
  std::vector<c10::IValue> list_at(const Dict& d, const std::string& key) const {
    const auto& v = at(d, key);
    if (!v.isList()) bad("'" + key + "' is not a list");
    return v.toListRef().vec();
  }
  std::string str(const Dict& d, const std::string& key) const {
    const auto& v = at(d, key);
    if (!v.isString()) bad("'" + key + "' is not a string");
    return v.toStringRef();
  }
  int64_t integer(const Dict& d, const std::string& key, int64_t lo = 0, int64_t hi = INT64_MAX) const {
    const auto& v = at(d, key);
    if (!v.isInt()) bad("'" + key + "' is not an integer");
    const int64_t i = v.toInt();
    if (i < lo || i > hi) bad("'" + key + "' is out of range (" + std::to_string(i) + ")");
    return i;
  }
  double number(const Dict& d, const std::string& key) const {
    const auto& v = at(d, key);
    if (v.isDouble()) return v.toDouble();
    if (v.isInt()) return static_cast<double>(v.toInt());
    bad("'" + key + "' is not a number");
  }
  float f32(const Dict& d, const std::string& key) const { return static_cast<float>(number(d, key)); }
  template <class T>
  std::vector<T> vec(const Dict& d, const std::string& key, at::ScalarType type) const {
    const auto& v = at(d, key);
    if (!v.isTensor()) bad("'" + key + "' is not a tensor");
    at::Tensor t = v.toTensor();
    if (t.scalar_type() != type || t.dim() != 1) bad("'" + key + "' is not a 1-D " + c10::toString(type) + " tensor");
    t = t.contiguous();
    return std::vector<T>(t.data_ptr<T>(), t.data_ptr<T>() + t.numel());
  }
  Dict as_dict(const c10::IValue& v, const std::string& what) const {
    if (!v.isGenericDict()) bad(what + " is not a dict");
    return v.toGenericDict();
  }

 private:
  std::string name_;
};

StatsFile::Point read_point(const Reader& r, const Dict& d) {
  StatsFile::Point p;
  p.site = r.str(d, "site");
  p.side = r.str(d, "side");
  if (p.side != "input" && p.side != "output") r.bad("a point's side is '" + p.side + "'");
  p.stats.calls = r.integer(d, "calls");
  if (r.has(d, "range")) {
    Dict e = r.dict_at(d, "range");
    RangeSummary s;
    s.batches = r.integer(e, "batches");
    s.avg_range = r.f32(e, "avg_range");
    s.epoch_min = r.f32(e, "min");
    s.epoch_max = r.f32(e, "max");
    s.invalid = r.str(e, "invalid");
    p.stats.range = s;
  }
  for (const auto& v : r.list_at(d, "minmax")) {
    Dict e = r.as_dict(v, "a minmax entry");
    MinMaxSummary s;
    const int ch_axis = static_cast<int>(r.integer(e, "ch_axis", -64, 64));
    s.axis = static_cast<int>(r.integer(e, "axis", -1, 64));
    s.min = r.vec<float>(e, "min", at::kFloat);
    s.max = r.vec<float>(e, "max", at::kFloat);
    s.invalid = r.str(e, "invalid");
    if (s.min.size() != s.max.size()) r.bad("minmax of '" + p.site + "' has unequal min and max lengths");
    p.stats.minmax[ch_axis] = std::move(s);
  }
  for (const auto& v : r.list_at(d, "percentile")) {
    Dict e = r.as_dict(v, "a percentile entry");
    PercentileSummary s;
    const int ch_axis = static_cast<int>(r.integer(e, "ch_axis", -64, 64));
    const float q = r.f32(e, "q");
    if (!(q >= 0.0f && q <= 1.0f)) r.bad("a percentile of '" + p.site + "' is not in [0, 1]");
    s.axis = static_cast<int>(r.integer(e, "axis", -1, 64));
    s.batches = r.integer(e, "batches");
    s.avg_ratio = r.vec<float>(e, "avg_ratio", at::kFloat);
    s.batches_used = r.vec<int32_t>(e, "batches_used", at::kInt);
    s.constant_batches = r.vec<int32_t>(e, "constant_batches", at::kInt);
    s.invalid = r.str(e, "invalid");
    if (s.batches_used.size() != s.avg_ratio.size() || s.constant_batches.size() != s.avg_ratio.size())
      r.bad("percentile of '" + p.site + "' has lists of unequal lengths");
    p.stats.percentile[{ch_axis, q}] = std::move(s);
  }
  if (r.has(d, "histogram")) {
    Dict e = r.dict_at(d, "histogram");
    HistogramSummary s;
    s.batches = r.integer(e, "batches");
    s.min_val = r.f32(e, "min_val");
    s.max_val = r.f32(e, "max_val");
    const int64_t bins = r.integer(e, "bins");
    s.histogram = r.vec<float>(e, "histogram", at::kFloat);
    if (bins != kHistogramBins)
      r.bad("the histogram of '" + p.site + "' states " + std::to_string(bins) + " bins (HistogramObserver's are " +
            std::to_string(kHistogramBins) + ")");
    if (!s.histogram.empty() && static_cast<int64_t>(s.histogram.size()) != bins)
      r.bad("the histogram of '" + p.site + "' has " + std::to_string(s.histogram.size()) + " bins, not the " +
            std::to_string(bins) + " it states");
    s.data_min = r.f32(e, "data_min");
    s.data_max = r.f32(e, "data_max");
    s.sum_squares = r.number(e, "sum_squares");
    s.count = r.integer(e, "count");
    s.invalid = r.str(e, "invalid");
    if (s.batches > 0 && s.invalid.empty() && s.histogram.empty())
      r.bad("the histogram of '" + p.site + "' has no bins, but " + std::to_string(s.batches) + " batches");
    p.stats.histogram = std::move(s);
  }
  return p;
}

}  // namespace

int64_t StatsFile::batches() const {
  int64_t n = 0;
  for (const auto& s : calibration) n += s.batches;
  return n;
}

std::string to_bytes(const StatsFile& f) {
  Dict root = dict();
  root.insert("format", std::string("qreport-stats"));
  root.insert("version", kFormatVersion);
  root.insert("tool", f.tool);
  Dict model = dict();
  model.insert("path", f.model_path);
  model.insert("sha256", f.model_sha256);
  root.insert("model", model);
  List cal = list();
  for (const auto& s : f.calibration) {
    Dict e = dict();
    e.insert("path", s.path);
    e.insert("batches", s.batches);
    e.insert("run", s.run);
    cal.push_back(e);
  }
  root.insert("calibration", cal);
  root.insert("device", f.device);
  Dict settings = dict();
  settings.insert("ch_axis", f.settings.ch_axis);
  List dets = list();
  for (const auto& d : f.settings.detectors) dets.push_back(d);
  settings.insert("detectors", dets);
  settings.insert("outlier_reference_percentile", f.settings.outlier_reference_percentile);
  root.insert("settings", settings);
  List points = list();
  for (const auto& p : f.points) points.push_back(point_value(p));
  root.insert("points", points);
  root.insert("digest", digest_of(root));
  std::vector<char> bytes = torch::jit::pickle_save(root);
  return std::string(bytes.begin(), bytes.end());
}

void save(const StatsFile& f, const std::string& path) { write_output(path, to_bytes(f)); }

StatsFile from_ivalue(const c10::IValue& root, const std::string& name, bool check_digest);

StatsFile load(const std::string& path, bool check_digest) {
  return from_ivalue(calibration::load_torch_save(path, "statistics file"), "'" + path + "'", check_digest);
}

StatsFile from_bytes(const std::string& bytes, const std::string& name) {
  c10::IValue root;
  try {
    root = torch::jit::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    throw InputError("statistics of " + name + " cannot be read: " + first_line(e.what()));
  }
  return from_ivalue(root, name, true);
}

StatsFile from_ivalue(const c10::IValue& root, const std::string& name, bool check_digest) {
  const Reader r(name);
  const std::string path = name;
  if (!root.isGenericDict()) r.bad("it is a torch.save archive, but not of qreport statistics");
  Dict d = root.toGenericDict();
  if (!r.has(d, "format") || !d.at("format").isString() || d.at("format").toStringRef() != "qreport-stats")
    r.bad("it is a torch.save archive, but not of qreport statistics (no format 'qreport-stats')");
  const int64_t version = r.integer(d, "version", 0);
  if (version != kFormatVersion)
    throw InputError("statistics file " + path + " has format version " + std::to_string(version) +
                     " (this qreport reads " + std::to_string(kFormatVersion) +
                     (version < kFormatVersion ? ": save the statistics again with qreport analyze --save-stats" : "") +
                     ")");
  // The digest before anything is read from the records: a damaged file is refused as damaged, whatever
  // the damage happens to look like.
  const std::string stored = r.str(d, "digest");
  if (check_digest) {
    std::string computed;
    try {
      computed = digest_of(root);
    } catch (const InputError& e) {
      r.bad(e.what());
    }
    if (stored != computed)
      r.bad("its digest does not match its contents (" + (stored.size() > 19 ? stored.substr(0, 19) + "..." : stored) +
            " stored, " + computed.substr(0, 19) + "... computed): it was changed or damaged after qreport wrote it");
  }
  StatsFile f;
  f.tool = r.str(d, "tool");
  Dict model = r.dict_at(d, "model");
  f.model_path = r.str(model, "path");
  f.model_sha256 = r.str(model, "sha256");
  for (const auto& v : r.list_at(d, "calibration")) {
    Dict e = r.as_dict(v, "a calibration entry");
    f.calibration.push_back({r.str(e, "path"), r.integer(e, "batches"), r.str(e, "run")});
  }
  f.device = r.str(d, "device");
  Dict settings = r.dict_at(d, "settings");
  f.settings.ch_axis = r.str(settings, "ch_axis");
  for (const auto& v : r.list_at(settings, "detectors")) {
    if (!v.isString()) r.bad("settings.detectors holds a non-string");
    f.settings.detectors.push_back(v.toStringRef());
  }
  f.settings.outlier_reference_percentile = r.number(settings, "outlier_reference_percentile");
  for (const auto& v : r.list_at(d, "points")) f.points.push_back(read_point(r, r.as_dict(v, "a point")));
  validate(f, name);
  return f;
}

}  // namespace qreport::stats
