// tests/test_holdout.cpp - eval.holdout (data/holdout.h): the held-out split's
// size, disjointness from the pretraining / probe-train images, determinism for
// its seed, the config checks, and a whole run (pretraining, kNN monitor,
// linear probes) with the test split's files absent: with a holdout the test
// split is never opened.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/holdout.h"
#include "helpers.h"
#include "skip.h"
#include "train/eval.h"
#include "train/model.h"
#include "train/run_config.h"
#include "train/trainer.h"

using namespace simclr;
namespace fs = std::filesystem;

namespace {
std::string fmnist_dir() {
  const char* e = std::getenv("SIMCLR_TEST_FMNIST");
  return e != nullptr ? e : "/usr/share/datasets/fashion-mnist";
}
bool have_fmnist() { return fs::exists(fmnist_dir() + "/train-images-idx3-ubyte.gz"); }

// n 1x1 images whose single pixel is i % 256 and whose label is i: the label
// names the source index through a subset.
std::shared_ptr<Dataset> numbered(int64_t n) {
  std::vector<Image> im;
  std::vector<int64_t> lab;
  for (int64_t i = 0; i < n; i++) {
    Image x(1, 1, 1);
    x.pixels[0] = static_cast<uint8_t>(i % 256);
    im.push_back(x);
    lab.push_back(i);
  }
  return memory_dataset(std::move(im), std::move(lab), {}, "numbered");
}

std::vector<int64_t> labels_of(const Dataset& d) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < d.size(); i++) v.push_back(d.get(i).label);
  return v;
}
}  // namespace

TEST_CASE("holdout: round(f n) sorted distinct indices, a function of (n, f, seed)", "[holdout]") {
  const std::vector<int64_t> a = holdout_indices(1000, 0.1, 7);
  REQUIRE(a.size() == 100);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::adjacent_find(a.begin(), a.end()) == a.end());  // distinct
  CHECK(a.front() >= 0);
  CHECK(a.back() < 1000);
  CHECK(holdout_indices(1000, 0.1, 7) == a);        // deterministic for the seed
  CHECK(holdout_indices(1000, 0.1, 8) != a);        // another seed, another selection
  CHECK(holdout_indices(1000, 0.0, 7).empty());     // 0: off
  CHECK(holdout_indices(512, 0.1, 0).size() == 51);   // round(51.2)
  CHECK(holdout_indices(10, 0.25, 0).size() == 3);    // round(2.5) = 3 (half away from zero)
  CHECK(holdout_indices(2, 0.01, 0).size() == 1);     // at least one image ...
  CHECK(holdout_indices(3, 0.5, 0).size() == 2);      // round(1.5); at most n - 1
  // not the first k: a selection spread over the split (a fixed-seed fact: 100 of 1000
  // uniformly drawn indices all below 500 has probability about 2^-100)
  CHECK(a.back() >= 500);
  CHECK(a.front() < 500);
  CHECK_THROWS_WITH(holdout_indices(100, 0.6, 0), Catch::Contains("eval.holdout must be in [0, 0.5]"));
}

TEST_CASE("holdout: the two parts are disjoint, cover the split, keep its order", "[holdout]") {
  std::shared_ptr<Dataset> ds = numbered(300);
  HoldoutSplit s = split_holdout(ds, 0.2, 3);
  REQUIRE(s.held->size() == 60);
  REQUIRE(s.train->size() == 240);
  const std::vector<int64_t> h = labels_of(*s.held), t = labels_of(*s.train);
  CHECK(h == holdout_indices(300, 0.2, 3));  // the held-out images are exactly the selection
  CHECK(std::is_sorted(t.begin(), t.end()));
  std::set<int64_t> all(h.begin(), h.end());
  for (int64_t i : t) CHECK(all.insert(i).second);  // disjoint
  CHECK(all.size() == 300);                          // and together the whole split
  CHECK(s.held->get(0).image.pixels[0] == static_cast<uint8_t>(h[0] % 256));  // the image, not only the label
  CHECK_THAT(s.held->describe(), Catch::Contains("held-out: 60 of 300"));
  CHECK_THROWS_WITH(s.held->get(60), Catch::Contains("out of range"));
}

TEST_CASE("holdout: config key, checks, resume guard", "[holdout]") {
  json j = quickstart_config();
  CHECK(parse_run_config(j).eval.holdout == 0);
  j["eval"]["holdout"] = 0.1;
  j["eval"]["holdout_seed"] = 5;
  RunConfig c = parse_run_config(j);
  CHECK(c.eval.holdout == 0.1);
  CHECK(c.eval.holdout_seed == 5);
  CHECK(run_config_to_json(c)["eval"]["holdout"] == 0.1);
  json bad = j;
  bad["eval"]["holdout"] = 0.6;
  CHECK_THROWS_WITH(parse_run_config(bad), Catch::Contains("eval.holdout"));
  bad = j;
  bad["data"]["split"] = "test";
  CHECK_THROWS_WITH(parse_run_config(bad), Catch::Contains("'eval.holdout' needs 'data.split' = \"train\""));
  // eval.* may change on resume, but not the holdout: it changes the pretraining images
  json a = run_config_to_json(c), b = a;
  b["eval"]["knn_k"] = 5;
  CHECK(config_mismatch(a, b).empty());
  b["eval"]["holdout"] = 0.2;
  CHECK_THAT(config_mismatch(a, b), Catch::Contains("eval.holdout"));
  b = a;
  b["eval"]["holdout_seed"] = 6;
  CHECK_THAT(config_mismatch(a, b), Catch::Contains("eval.holdout_seed"));
  b = a;
  b["eval"].erase("holdout");  // a checkpoint from before the key: the same as 0
  CHECK_THAT(config_mismatch(a, b), Catch::Contains("eval.holdout"));
  json z = run_config_to_json(parse_run_config(quickstart_config())), z2 = z;
  z2["eval"].erase("holdout");
  z2["eval"].erase("holdout_seed");
  CHECK(config_mismatch(z2, z).empty());
}

TEST_CASE("holdout: a run pretrains and probes without the held-out images and never opens the test split",
          "[holdout]") {
  if (!have_fmnist()) SIMCLR_SKIP("Fashion-MNIST is not installed at " + fmnist_dir());
  // a data.path holding the training files only: the test split cannot be read
  const fs::path dir = fs::temp_directory_path() / "simclr_test_holdout";
  fs::remove_all(dir);
  fs::create_directories(dir / "data");
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"})
    fs::create_symlink(fs::path(fmnist_dir()) / f, dir / "data" / f);
  json j = quickstart_config();
  j["data"]["path"] = (dir / "data").string();
  j["data"]["subset"] = 256;
  j["data"]["workers"] = 1;
  j["model"]["width"] = 0.0625;
  j["train"]["epochs"] = 1;
  j["train"]["batch"] = 64;
  j["train"]["threads"] = 1;
  j["train"]["run_dir"] = (dir / "run").string();
  j["eval"]["l2_grid"] = json::array({1e-4});
  j["eval"]["max_iter"] = 10;
  j["eval"]["knn_every"] = 1;
  j["eval"]["knn_k"] = 5;
  j["eval"]["raw_pixels"] = false;
  j["eval"]["random_init"] = false;

  // control: without a holdout the missing test split is an error before any work
  CHECK_THROWS_WITH(check_run_paths(parse_run_config(j)), Catch::Contains("t10k-images-idx3-ubyte"));

  j["eval"]["holdout"] = 0.25;
  RunConfig cfg = parse_run_config(j);
  check_run_paths(cfg);  // no test split needed
  // the three parts: pretraining = probe-train = the 256 minus 64 held out, exactly the selection
  const std::vector<int64_t> held = holdout_indices(256, 0.25, 0);
  std::shared_ptr<Dataset> full = open_dataset(cfg.data, "train");  // the 256 (data.subset)
  std::shared_ptr<Dataset> pre = open_run_split(cfg.data, "pretrain", 0.25, 0);
  std::shared_ptr<Dataset> probe = open_run_split(cfg.data, "probe", 0.25, 0);
  std::shared_ptr<Dataset> score = open_run_split(cfg.data, "score", 0.25, 0);
  REQUIRE(full->size() == 256);
  REQUIRE(score->size() == 64);
  REQUIRE(pre->size() == 192);
  REQUIRE(probe->size() == 192);
  for (int64_t i = 0; i < 64; i++) {
    Sample a = score->get(i), b = full->get(held[static_cast<size_t>(i)]);
    CHECK((a.image.pixels == b.image.pixels && a.label == b.label));
  }
  std::set<int64_t> hs(held.begin(), held.end());
  for (int64_t i = 0, k = 0; i < 256; i++) {
    if (hs.count(i)) continue;
    Sample a = pre->get(k), b = full->get(i), c = probe->get(k);
    CHECK((a.image.pixels == b.image.pixels && c.image.pixels == b.image.pixels));
    k++;
  }

  TrainOptions o;
  o.out = nullptr;
  TrainResult r = train(cfg, o);
  REQUIRE(r.finished);
  CHECK(r.total_steps == 3);  // 192 / 64 (drop_last): the 64 held-out images are not pretrained on
  std::ifstream mf((dir / "run" / "metrics.jsonl").string());
  std::string line;
  bool knn = false;
  while (std::getline(mf, line)) {
    json l = json::parse(line);
    if (l.value("eval", "") == "knn") knn = l.value("split", "") == "holdout";
  }
  CHECK(knn);  // the kNN monitor scored on the held-out images and says so

  SimclrModel m(cfg.model, nullptr);
  m.init(cfg.train.seed);
  ProbeReport p = probe_encoder(*m.encoder, cfg, true, false, "encoder");
  CHECK(p.split == "holdout");
  CHECK(p.train_images == 192);
  CHECK(p.test_images == 64);
  CHECK(p.to_json()["split"] == "holdout");
  CHECK((p.linear.top1 >= 0 && p.linear.top1 <= 1));
  ProbeReport px = probe_pixels(cfg);
  CHECK(px.split == "holdout");
  CHECK(px.test_images == 64);
  CHECK(px.linear.top1 > 0.3);  // raw pixels on 10 classes, 192 training images: well above chance (0.1)
  fs::remove_all(dir);
}
