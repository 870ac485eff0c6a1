// data/holdout.cpp - see holdout.h.
#include "data/holdout.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "data/rng.h"

namespace simclr {

namespace {
class IndexSubsetDataset final : public Dataset {
 public:
  IndexSubsetDataset(std::shared_ptr<const Dataset> ds, std::vector<int64_t> idx, std::string what)
      : ds_(std::move(ds)), idx_(std::move(idx)), what_(std::move(what)) {}
  int64_t size() const override { return static_cast<int64_t>(idx_.size()); }
  int channels() const override { return ds_->channels(); }
  int height() const override { return ds_->height(); }
  int width() const override { return ds_->width(); }
  int num_classes() const override { return ds_->num_classes(); }
  const std::vector<std::string>& class_names() const override { return ds_->class_names(); }
  Sample get(int64_t i) const override {
    SIMCLR_CHECK(i >= 0 && i < size(), "index ", i, " out of range for a dataset of ", size());
    return ds_->get(idx_[static_cast<size_t>(i)]);
  }
  int64_t skipped() const override { return ds_->skipped(); }
  std::string describe() const override {
    return ds_->describe() + " (" + what_ + ": " + std::to_string(idx_.size()) + " of " + std::to_string(ds_->size()) +
           ")";
  }

 private:
  std::shared_ptr<const Dataset> ds_;
  std::vector<int64_t> idx_;
  std::string what_;
};
}  // namespace

std::vector<int64_t> holdout_indices(int64_t n, double fraction, uint64_t seed) {
  SIMCLR_CHECK(fraction >= 0 && fraction <= 0.5, "eval.holdout must be in [0, 0.5], got ", fraction);
  if (fraction == 0 || n <= 0) return {};
  SIMCLR_CHECK(n >= 2, "eval.holdout: a training split of ", n, " image(s) cannot be split");
  const int64_t k = std::clamp<int64_t>(std::llround(fraction * static_cast<double>(n)), 1, n - 1);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  CounterRng rng(seed, kStreamHoldout, 0, 0);
  for (int64_t i = n - 1; i > 0; i--) {  // Fisher-Yates
    const int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  std::vector<int64_t> held(perm.begin(), perm.begin() + k);
  std::sort(held.begin(), held.end());
  return held;
}

std::unique_ptr<Dataset> index_subset(std::shared_ptr<const Dataset> ds, std::vector<int64_t> indices,
                                      const std::string& what) {
  for (int64_t i : indices)
    SIMCLR_CHECK(i >= 0 && i < ds->size(), "index_subset: index ", i, " out of range for ", ds->describe());
  return std::make_unique<IndexSubsetDataset>(std::move(ds), std::move(indices), what);
}

HoldoutSplit split_holdout(std::shared_ptr<const Dataset> ds, double fraction, uint64_t seed) {
  const int64_t n = ds->size();
  std::vector<int64_t> held = holdout_indices(n, fraction, seed);
  std::vector<int64_t> rest;
  rest.reserve(static_cast<size_t>(n) - held.size());
  size_t h = 0;
  for (int64_t i = 0; i < n; i++) {
    if (h < held.size() && held[h] == i) {
      h++;
      continue;
    }
    rest.push_back(i);
  }
  HoldoutSplit s;
  s.train = index_subset(ds, std::move(rest), "held-out images removed");
  s.held = index_subset(ds, std::move(held), "held-out");
  return s;
}

std::shared_ptr<Dataset> open_run_split(const DataConfig& c, const std::string& role, double fraction, uint64_t seed) {
  SIMCLR_CHECK(role == "pretrain" || role == "probe" || role == "score", "open_run_split: unknown role '", role, "'");
  if (fraction == 0) {
    if (role == "pretrain") return open_dataset(c, c.split);
    return open_dataset(c, role == "probe" ? "train" : "test");
  }
  SIMCLR_CHECK(c.split == "train", "config: 'eval.holdout' needs 'data.split' = \"train\" (got \"", c.split,
               "\"): the held-out images are carved from the training split");
  HoldoutSplit s = split_holdout(open_dataset(c, "train"), fraction, seed);
  return role == "score" ? s.held : s.train;
}

}  // namespace simclr
