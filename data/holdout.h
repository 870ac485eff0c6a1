// data/holdout.h - a held-out validation split carved from the training split
// (config key eval.holdout), for choosing a recipe without looking at the test
// split (issue 18; docs/config.md, docs/results.md "Recipe study").
//
// With fraction f > 0, round(f * n) of the n images of the training split (as
// data.subset leaves it) are held out: a seeded random selection (Fisher-Yates
// permutation from the counter RNG of data/rng.h under `seed`, stream
// kStreamHoldout; the first round(f * n) entries are held out). They are
// removed from pretraining and from the probes' training set, and the probes
// score on them instead of the test split; the test split is never opened.
// Both parts keep the training split's order (indices sorted), so a loader's
// shuffle over them is still a pure function of the train seed.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "data/readers.h"

namespace simclr {

constexpr uint32_t kStreamHoldout = 0x484fu;  // "HO"

// The held-out indices of a split of n images, sorted: round(fraction * n) of
// them (at least 1 and at most n - 1 when fraction > 0), a function of
// (n, fraction, seed) only. fraction in [0, 0.5]; 0: none.
std::vector<int64_t> holdout_indices(int64_t n, double fraction, uint64_t seed);

// The images of ds at `indices` (each in [0, size)), in that order. describe()
// says "<ds> (<what>: k of n)".
std::unique_ptr<Dataset> index_subset(std::shared_ptr<const Dataset> ds, std::vector<int64_t> indices,
                                      const std::string& what);

struct HoldoutSplit {
  std::shared_ptr<Dataset> train;  // the training split minus the held-out images
  std::shared_ptr<Dataset> held;   // the held-out images
};
HoldoutSplit split_holdout(std::shared_ptr<const Dataset> ds, double fraction, uint64_t seed);

// The datasets a run uses, with eval.holdout applied (fraction 0: exactly
// open_dataset). role:
//   "pretrain"  images for pretraining (data.split; with a holdout: the
//               training split minus the held-out images)
//   "probe"     the probes' training set (the training split, minus the
//               held-out images)
//   "score"     what the probes score on: the test split, or the held-out images
// A holdout needs data.split = "train" (throws otherwise).
std::shared_ptr<Dataset> open_run_split(const DataConfig& c, const std::string& role, double fraction, uint64_t seed);

// "holdout" when fraction > 0, else "test": the split the probes score on, as
// results.json and the metrics lines name it.
inline const char* score_split_name(double fraction) { return fraction > 0 ? "holdout" : "test"; }

}  // namespace simclr
