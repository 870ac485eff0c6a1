// tests/test_finetune.cpp - the labelled subset of `simclr finetune`
// (train/finetune.h): class-balanced counts, determinism per seed, and the
// errors of a bad request. The fine-tuning itself (pretrained beats random
// init on 1 % of Fashion-MNIST) is in tests/test_train_e2e.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "train/finetune.h"

using namespace simclr;

TEST_CASE("finetune: the subset is class-balanced, sorted, distinct and seeded", "[finetune]") {
  // 3 classes of 1000, 200 and 7 images, interleaved
  std::vector<int64_t> labels;
  for (int i = 0; i < 1000; i++) labels.push_back(0);
  for (int i = 0; i < 200; i++) labels.insert(labels.begin() + 3 * i + 1, 1);
  for (int i = 0; i < 7; i++) labels.push_back(2);
  const std::vector<int64_t> a = balanced_subset(labels, 3, 0.1, 5);
  int count[3] = {0, 0, 0};
  for (int64_t i : a) count[labels[static_cast<size_t>(i)]]++;
  CHECK(count[0] == 100);  // round(0.1 n_c)
  CHECK(count[1] == 20);
  CHECK(count[2] == 1);    // round(0.7) = 1
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::set<int64_t>(a.begin(), a.end()).size() == a.size());
  CHECK(balanced_subset(labels, 3, 0.1, 5) == a);  // the same seed, the same subset
  CHECK(balanced_subset(labels, 3, 0.1, 6) != a);  // another seed, another subset
  const std::vector<int64_t> tiny = balanced_subset(labels, 3, 0.0001, 0);
  CHECK(tiny.size() == 3);  // at least one per class
  CHECK(balanced_subset(labels, 3, 1.0, 0).size() == labels.size());
}

TEST_CASE("finetune: bad fractions and labels are errors naming the problem", "[finetune]") {
  const std::vector<int64_t> labels = {0, 1, 0, 1};
  CHECK_THROWS_WITH(balanced_subset(labels, 2, 0.0, 0), Catch::Contains("--fraction"));
  CHECK_THROWS_WITH(balanced_subset(labels, 2, 1.5, 0), Catch::Contains("--fraction"));
  CHECK_THROWS_WITH(balanced_subset(labels, 1, 0.5, 0), Catch::Contains("at least 2 classes"));
  CHECK_THROWS_WITH(balanced_subset({0, -1, 1}, 2, 0.5, 0), Catch::Contains("image 1 has label -1"));
}
