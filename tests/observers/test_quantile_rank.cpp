#include "observers/observers.h"
#include "test_support.h"

using qreport::observers::quantile_lower_rank;

TEST_CASE("quantile rank: floor(float32(q * float32(m - 1))), spec §1.3") {
  CHECK(quantile_lower_rank(0.9f, 10) == 8);
  CHECK(quantile_lower_rank(0.9f, 11) == 9);  // double arithmetic would give 8
  CHECK(quantile_lower_rank(0.9f, 21) == 18);
  CHECK(quantile_lower_rank(0.9f, 64) == 56);
  CHECK(quantile_lower_rank(0.95f, 64) == 59);
  CHECK(quantile_lower_rank(0.975f, 64) == 61);
  CHECK(quantile_lower_rank(0.9f, 3) == 1);
  CHECK(quantile_lower_rank(0.0f, 7) == 0);
  CHECK(quantile_lower_rank(1.0f, 7) == 6);
  CHECK(quantile_lower_rank(0.9f, 1) == 0);
}

TEST_CASE("quantile rank agrees with torch.quantile where exact decimals do not (oracle v5)") {
  CHECK(quantile_lower_rank(0.9f, 4660342) == 4194307);
  CHECK(quantile_lower_rank(0.95f, 2207542) == 2097164);
  CHECK(quantile_lower_rank(0.975f, 393242) == 383410);
}

TEST_CASE("batch_to_epoch_ratio is null with a reason where PyTorch raises or returns -0.0") {
  using namespace qreport::observers;
  std::string why;
  RangeSummary none;
  CHECK_FALSE(batch_to_epoch_ratio(none, &why).has_value());
  CHECK(why == "no data was observed");
  RangeSummary flat{3, 0.0f, 1.0f, 1.0f, ""};
  CHECK_FALSE(batch_to_epoch_ratio(flat, &why).has_value());
  CHECK(why == "the epoch range is 0 (constant data)");
  RangeSummary ok{2, 85.0f, -10.0f, 100.0f, ""};
  CHECK(*batch_to_epoch_ratio(ok, &why) == doctest::Approx(0.7727272510528564).epsilon(1e-7));
}
