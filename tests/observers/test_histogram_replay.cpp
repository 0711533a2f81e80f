// The HistogramObserver replay against the running PyTorch's own observer (fixtures written by
// data/make_histogram_fixtures.py with the Python of this build's LibTorch): after every batch of every
// sequence the same min_val, max_val and 2048 bins, bit for bit; then the same search range and qparams;
// with PyTorch >= 2.5 also qreport merge's combine of two partial runs against the observer's own
// _combine_histograms.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "observers/observers.h"
#include "observers/stat_observers.h"
#include "stats/stats.h"
#include "test_support.h"

using namespace qreport::observers;
using json = nlohmann::json;

namespace {

constexpr int64_t kBins = HistogramObserver::kBins;

std::vector<float> read_floats(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << path << " (ctest -R make_histogram_fixtures)");
  const auto bytes = static_cast<size_t>(in.tellg());
  std::vector<float> v(bytes / sizeof(float));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

json index() {
  std::ifstream in(fixture("histogram/index.json"));
  REQUIRE_MESSAGE(in.good(), "missing fixture histogram/index.json (ctest -R make_histogram_fixtures)");
  return json::parse(in);
}

struct Case {
  std::string name;
  std::vector<at::Tensor> batches;
  std::vector<float> states;  // per batch: min_val, max_val, bins
  json entry;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  const json i = index();
  for (const json& e : i["cases"]) {
    Case c{e["name"].get<std::string>(), {}, read_floats(fixture("histogram/" + e["name"].get<std::string>() + ".states.f32")), e};
    const std::vector<float> x = read_floats(fixture("histogram/" + c.name + ".x.f32"));
    size_t at = 0;
    for (const json& n : e["batches"]) {
      const int64_t numel = n.get<int64_t>();
      c.batches.push_back(at::from_blob(const_cast<float*>(x.data() + at), {numel}, at::kFloat).clone());
      at += static_cast<size_t>(numel);
    }
    REQUIRE(at == x.size());
    REQUIRE(c.states.size() == c.batches.size() * (2 + kBins));
    out.push_back(std::move(c));
  }
  REQUIRE(out.size() >= 10);
  return out;
}

// Bins that differ from the oracle's, for the message (0 when equal).
int differing_bins(const std::vector<float>& got, const float* want) {
  int n = 0;
  for (int64_t i = 0; i < kBins; ++i) n += got[static_cast<size_t>(i)] != want[i];
  return n;
}

void check_state(const HistogramSummary& s, const float* want, const std::string& what) {
  INFO(what);
  CHECK(s.invalid == "");
  CHECK(s.min_val == want[0]);
  CHECK(s.max_val == want[1]);
  REQUIRE(s.histogram.size() == static_cast<size_t>(kBins));
  CHECK(differing_bins(s.histogram, want + 2) == 0);
}

}  // namespace

TEST_CASE("the fixtures come from the PyTorch whose algorithm this build replays") {
  const json i = index();
  INFO("fixtures written by torch " << i["torch"].get<std::string>() << ", replaying "
                                    << histogram_merge_name(kHistogramMerge));
  CHECK(i["upsample_rate"].get<int>() == (kHistogramMerge == HistogramMerge::kUpscale ? 16 : 128));
}

TEST_CASE("HistogramObserver replay: every batch's state equals PyTorch's observer, bit for bit") {
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (const Case& c : cases()) {
      // Alone (the observer finds each batch's range) and in an observation point with channel
      // statistics (the range lent by the channel kernel, the sum of squares in the histogram's read).
      HistogramObserver alone;
      ObservationPoint lent;
      lent.want_histogram();
      lent.want_minmax(-1);
      for (size_t k = 0; k < c.batches.size(); ++k) {
        alone.observe(c.batches[k]);
        lent.observe(c.batches[k]);
        const float* want = c.states.data() + k * (2 + kBins);
        check_state(alone.finalize(), want, c.name + " batch " + std::to_string(k) + ", " + std::to_string(threads) +
                                                " thread(s)");
      }
      lent.finalize();
      check_state(*lent.histogram(), c.states.data() + (c.batches.size() - 1) * (2 + kBins),
                  c.name + " through an observation point");
    }
  }
  at::set_num_threads(1);
}

TEST_CASE("HistogramObserver replay: the search range and qparams equal calculate_qparams'") {
  for (const Case& c : cases()) {
    INFO(c.name);
    HistogramObserver h;
    for (const at::Tensor& x : c.batches) h.observe(x);
    const auto range = histogram_search_range(h.finalize(), 256);
    REQUIRE(range);
    CHECK(range->first == c.entry["search"][0].get<float>());
    CHECK(range->second == c.entry["search"][1].get<float>());
    for (int64_t quant_max : {255, 127}) {
      INFO("quant_max " << quant_max);
      const QParams q = affine_qparams(range->first, range->second, 0, quant_max);
      const json& want = c.entry["qparams"][std::to_string(quant_max)];
      CHECK(q.scale == want[0].get<float>());
      CHECK(q.zero_point == want[1].get<int64_t>());
    }
  }
}

TEST_CASE("qreport merge combines two partial runs' histograms as PyTorch's _combine_histograms moves them") {
  int merges = 0;
  for (const Case& c : cases()) {
    if (!c.entry.contains("merge_split")) continue;
    INFO(c.name);
    const auto split = c.entry["merge_split"].get<size_t>();
    auto file = [&](size_t from, size_t to) {
      HistogramObserver h;
      for (size_t k = from; k < to; ++k) h.observe(c.batches[k]);
      qreport::stats::StatsFile f;
      f.model_sha256 = "0";
      qreport::stats::StatsFile::Point p{"fc", "input", {}};
      p.stats.histogram = h.finalize();
      f.points.push_back(p);
      return f;
    };
    const auto merged = qreport::stats::merge({file(0, split), file(split, c.batches.size())}, {"a", "b"});
    const HistogramSummary& m = *merged.points.at(0).stats.histogram;
    const std::vector<float> want = read_floats(fixture("histogram/" + c.name + ".merged.f32"));
    REQUIRE(want.size() == static_cast<size_t>(2 + kBins));
    CHECK(m.min_val == want[0]);
    CHECK(m.max_val == want[1]);
    CHECK(differing_bins(m.histogram, want.data() + 2) == 0);
    CHECK(m.batches == static_cast<int64_t>(c.batches.size()));
    ++merges;
  }
  // The oracle exists where PyTorch has _upscale_histogram (2.5 and later), which is where merge uses it.
  CHECK((merges > 0) == (kHistogramMerge == HistogramMerge::kUpscale));
}
