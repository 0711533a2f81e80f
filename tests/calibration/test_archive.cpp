#include "calibration/calibration.h"
#include "common/errors.h"
#include "test_support.h"

using namespace qreport;
using calibration::Archive;

TEST_CASE("a list of tensors is a list of one-argument batches") {
  auto a = Archive::open(fixture("graph/calib_list.pt"), {});
  REQUIRE(a.size() == 2);
  CHECK(a.batch(1).positional.size() == 1);
  CHECK(a.batch(1).positional[0].sum().item<float>() == doctest::Approx(78.0));
  CHECK(a.layout() == "list of 2 batches");
}

TEST_CASE("a list of tuples gives positional arguments") {
  auto a = Archive::open(fixture("graph/calib_tuples.pt"), {});
  REQUIRE(a.size() == 1);
  CHECK(a.batch(0).positional.size() == 2);
  CHECK(a.batch(0).positional[1].size(1) == 3);
}

TEST_CASE("a dict maps argument names to per-batch tensors") {
  auto a = Archive::open(fixture("graph/calib_dict.pt"), {});
  REQUIRE(a.size() == 2);
  REQUIRE(a.batch(0).named.size() == 2);
  CHECK(a.batch(0).named[0].first == "x");
  CHECK(a.batch(0).named[1].first == "y");
}

TEST_CASE("a single tensor is split by batch size, and max_batches truncates") {
  calibration::Options o;
  o.batch_size = 3;
  auto a = Archive::open(fixture("graph/calib_tensor.pt"), o);
  REQUIRE(a.size() == 2);
  CHECK(a.batch(0).positional[0].size(0) == 3);
  CHECK(a.batch(1).positional[0].size(0) == 1);
  CHECK(Archive::open(fixture("graph/calib_tensor.pt"), {}).size() == 1);
  o.max_batches = 1;
  CHECK(Archive::open(fixture("graph/calib_tensor.pt"), o).size() == 1);
}

TEST_CASE("bad archives are InputErrors with one clear line") {
  auto msg = [](const std::string& path) {
    try {
      Archive::open(path, {});
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(msg(fixture("graph/calib_legacy.pt")).find("legacy (pre-1.6) torch.save format") != std::string::npos);
  CHECK(msg(fixture("graph/calib_empty_list.pt")).find("the list of batches is empty") != std::string::npos);
  CHECK(msg(fixture("graph/calib_nontensor.pt")).find("batch 0 is a String, expected a Tensor") != std::string::npos);
  CHECK(msg(fixture("graph/shared_class.pt")).find("looks like a TorchScript model") != std::string::npos);
  CHECK(msg("/nonexistent.pt") == "calibration archive '/nonexistent.pt' does not exist");
}

TEST_CASE("a one-element list (pickle APPEND, unknown to LibTorch 1.13) is read") {
  auto a = Archive::open(fixture("graph/calib_ids.pt"), {});
  REQUIRE(a.size() == 1);
  bool is_long = a.batch(0).positional[0].scalar_type() == at::kLong;
  CHECK(is_long);
}

TEST_CASE("storages are mapped in place and survive release()") {
  auto a = Archive::open(fixture("graph/calib_slow.pt"), {});
  REQUIRE(a.size() == 400);
  CHECK(a.storages_in_place() == 400);
  float before = a.batch(5).positional[0].sum().item<float>();
  a.release(5);
  CHECK(a.batch(5).positional[0].sum().item<float>() == before);  // re-read from the file
}

TEST_CASE("a compressed (re-zipped) archive is read into memory instead") {
  auto a = Archive::open(fixture("graph/calib_deflated.pt"), {});
  REQUIRE(a.size() == 2);
  CHECK(a.storages_in_place() == 0);
  CHECK(a.batch(1).positional[0].sum().item<float>() == doctest::Approx(78.0));
}
