// tests/test_run_config.cpp - the run config: defaults, overrides, and the
// documented errors (unknown key, wrong type, out of range, missing dataset,
// resume mismatch), each naming the key path.
#include <filesystem>
#include <fstream>

#include "helpers.h"
#include "train/run_config.h"
#include "optim/schedule.h"

using namespace simclr;

namespace {
RunConfig parse(const std::string& text) { return parse_run_config(json::parse(text)); }
}  // namespace

TEST_CASE("run config: defaults follow the paper", "[config]") {
  RunConfig c = parse("{}");
  CHECK(c.model.depth == 18);
  CHECK(c.model.width == 1.0);
  CHECK(c.model.stem == "cifar");  // Fashion-MNIST 28x28 -> auto picks the CIFAR stem
  CHECK(c.model.in_channels == 1);
  CHECK(c.head.depth == 2);
  CHECK(c.head.out == 128);
  CHECK(c.optimizer.name == "lars");
  CHECK(c.optimizer.momentum == 0.9);
  CHECK(c.optimizer.eta == 0.001);
  CHECK(c.optimizer.weight_decay == 1e-6);
  CHECK(c.optimizer.lr == 0.3);
  CHECK(c.optimizer.lr_scaling == "linear");
  CHECK(c.temperature == 0.5);
  CHECK(c.train.batch == 256);
  CHECK(c.eval.knn_k == 200);
  CHECK(c.eval.knn_temperature == 0.1);
  CHECK(parse(R"({"data": {"dataset": "image-folder", "path": "/x"}})").model.stem == "imagenet");
  // the resolved config parses back to itself
  json j = run_config_to_json(c);
  CHECK(run_config_to_json(parse_run_config(j)) == j);
}

TEST_CASE("run config: documented errors name the key path", "[config]") {
  CHECK_THROWS_WITH(parse(R"({"train": {"epochz": 3}})"),
                    Catch::Contains("unknown key 'train.epochz'") && Catch::Contains("did you mean 'train.epochs'"));
  CHECK_THROWS_WITH(parse(R"({"optimizer": {"lr": "fast"}})"), Catch::Contains("'optimizer.lr' must be a number"));
  CHECK_THROWS_WITH(parse(R"({"train": {"batch": 1}})"), Catch::Contains("'train.batch' = 1 is out of range"));
  CHECK_THROWS_WITH(parse(R"({"model": {"arch": "resnet20"}})"), Catch::Contains("'model.arch'"));
  CHECK_THROWS_WITH(parse(R"({"model": {"width": 0}})"), Catch::Contains("'model.width'"));
  CHECK_THROWS_WITH(parse(R"({"loss": {"temperature": -1}})"), Catch::Contains("'loss.temperature'"));
  CHECK_THROWS_WITH(parse(R"({"train": {"device": "tpu"}})"), Catch::Contains("'train.device'"));
  CHECK_THROWS_WITH(parse(R"({"schedule": {"warmup_epochs": 5}, "train": {"epochs": 2}})"),
                    Catch::Contains("'schedule.warmup_epochs'"));
  CHECK_THROWS_WITH(parse(R"({"data": {"augment": {"flip_p": 2}}})"), Catch::Contains("'data.augment.flip_p'"));
  CHECK_THROWS_WITH(parse(R"({"eval": {"l2_grid": []}})"), Catch::Contains("'eval.l2_grid'"));
  CHECK_THROWS_WITH(parse(R"({"typo": 1})"), Catch::Contains("unknown key 'typo'"));
  CHECK_THROWS_WITH(parse(R"({"data": {"subset": 100}, "train": {"batch": 256}})"), Catch::Contains("'data.subset'"));
  CHECK_THROWS_WITH(parse(R"([1, 2])"), Catch::Contains("must be an object"));
}

TEST_CASE("run config: file, --set overrides, missing dataset paths", "[config]") {
  std::string dir = simclr::test::scratch_dir("run_config");
  std::string path = dir + "/run.json";
  std::ofstream(path) << R"({"train": {"epochs": 5, "batch": 64}, "model": {"width": 0.5}})";
  json resolved;
  RunConfig c = load_run_config(path, {"train.epochs=7", "model.arch=resnet50", "optimizer.lr=0.5"}, &resolved);
  CHECK(c.train.epochs == 7);
  CHECK(c.train.batch == 64);
  CHECK(c.model.depth == 50);
  CHECK(c.optimizer.lr == 0.5);
  CHECK(resolved["model"]["arch"] == "resnet50");
  CHECK_THROWS_WITH(load_run_config(path, {"train.epochs=abc"}), Catch::Contains("'train.epochs' must be an integer"));
  CHECK_THROWS_WITH(load_run_config(path, {"train.nope=1"}), Catch::Contains("unknown key 'train.nope'"));
  CHECK_THROWS_WITH(load_run_config(dir + "/missing.json", {}), Catch::Contains("missing.json"));
  std::ofstream(dir + "/bad.json") << "{ \"train\": ";
  CHECK_THROWS_WITH(load_run_config(dir + "/bad.json", {}), Catch::Contains("not valid JSON"));
  std::ofstream(dir + "/empty.json") << " \n";
  CHECK_THROWS_WITH(load_run_config(dir + "/empty.json", {}), Catch::Contains("empty.json' is empty"));
  CHECK_THROWS_WITH(load_run_config(dir, {}), Catch::Contains("it is a directory"));

  RunConfig m = parse(R"({"data": {"dataset": "fashion-mnist", "path": "/nonexistent/fmnist"}})");
  CHECK_THROWS_WITH(check_run_paths(m), Catch::Contains("/nonexistent/fmnist"));
  RunConfig cif = parse(R"({"data": {"dataset": "cifar10", "path": "/nonexistent/cifar"}})");
  CHECK_THROWS_WITH(check_run_paths(cif), Catch::Contains("/nonexistent/cifar"));
}

TEST_CASE("run config: resume mismatch names the differing key", "[config]") {
  json a = run_config_to_json(parse("{}"));
  json b = a;
  b["train"]["log_interval"] = 7;  // may differ
  b["train"]["threads"] = 1;
  b["eval"]["knn_every"] = 3;
  CHECK(config_mismatch(a, b).empty());
  b["model"]["width"] = 2.0;
  CHECK_THAT(config_mismatch(a, b), Catch::Contains("model.width") && Catch::Contains("2.0"));
  json c = a;
  c["train"]["batch"] = 128;
  CHECK_THAT(config_mismatch(a, c), Catch::StartsWith("train.batch"));
}

TEST_CASE("run config: the quickstart config is valid and the issue's recipe with the study's lr", "[config]") {
  RunConfig q = parse_run_config(quickstart_config());
  CHECK(q.model.depth == 18);
  CHECK(q.model.width == 0.25);
  CHECK(q.model.stem == "cifar");
  CHECK(q.train.batch == 256);
  CHECK(q.optimizer.lr == 9.6);  // docs/results.md, "Recipe study"
  CHECK(q.temperature == 0.5);
  CHECK(q.data.augment.crop_scale_min == 0.2);
  CHECK(q.data.augment.brightness == Approx(0.4));
  CHECK(q.data.augment.contrast == Approx(0.4));
  CHECK(q.data.augment.jitter_p == 0.8);
  CHECK(q.data.augment.blur_p == 0.0);
}

TEST_CASE("run config: every file under configs/ parses and holds its documented recipe", "[config]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(SIMCLR_TEST_DATA).parent_path().parent_path() / "configs";
  REQUIRE(fs::is_directory(dir));
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    INFO(e.path().string());
    CHECK_NOTHROW(load_run_config(e.path().string(), {}));
    ++n;
  }
  CHECK(n >= 3);

  RunConfig f = load_run_config((dir / "fashion_mnist.json").string(), {});
  CHECK(f.model.depth == 18);
  CHECK(f.model.width == 0.25);
  CHECK(f.train.batch == 256);
  CHECK(f.train.epochs == 7);
  CHECK(scaled_base_lr(f.optimizer.lr, f.optimizer.lr_scaling, f.train.batch) == Approx(9.6));  // the quickstart's
  CHECK(f.data.augment.brightness == Approx(0.4));

  RunConfig c = load_run_config((dir / "cifar10_resnet18.json").string(), {});
  CHECK(c.data.dataset == "cifar10");
  CHECK(c.model.stem == "cifar");
  CHECK(c.temperature == 0.5);
  CHECK(c.optimizer.weight_decay == 1e-4);
  CHECK(scaled_base_lr(c.optimizer.lr, c.optimizer.lr_scaling, c.train.batch) == Approx(2.0));
  CHECK(c.data.augment.blur_p == 0.0);
  CHECK(c.data.augment.brightness == Approx(0.4));  // 0.8 x strength 0.5

  RunConfig i = load_run_config((dir / "imagenet_resnet50.json").string(), {});
  CHECK(i.model.depth == 50);
  CHECK(i.model.stem == "imagenet");
  CHECK(i.model.in_channels == 3);
  CHECK(i.train.batch == 4096);
  CHECK(i.train.epochs == 100);
  CHECK(i.warmup_epochs == 10);
  CHECK(i.temperature == 0.1);
  CHECK(i.optimizer.weight_decay == 1e-6);
  CHECK(scaled_base_lr(i.optimizer.lr, i.optimizer.lr_scaling, i.train.batch) == Approx(4.8));
  CHECK(i.data.augment.jitter_p == 0.8);
  CHECK(i.data.augment.brightness == Approx(0.8));
  CHECK(i.data.augment.hue == Approx(0.2));
  CHECK(i.data.augment.gray_p == 0.2);
  CHECK(i.data.augment.blur_p == 0.5);
  CHECK(i.data.image_size == 224);
}
