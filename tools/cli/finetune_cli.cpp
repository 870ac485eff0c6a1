// tools/cli/finetune_cli.cpp - see finetune_cli.h and train/finetune.h.
#include "tools/cli/finetune_cli.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "data/packed.h"
#include "engine/check.h"
#include "engine/json_config.h"
#include "train/checkpoint.h"
#include "train/export.h"
#include "train/finetune.h"
#include "train/run_config.h"
#include "train/trainer.h"

namespace simclr {

namespace fs = std::filesystem;

void apply_transfer_data(json& root, const std::string& data, const std::string& dataset,
                         const std::string& test_data) {
  SIMCLR_CHECK(!data.empty() || (dataset.empty() && test_data.empty()), "--dataset and --test-data need --data PATH");
  if (data.empty()) return;
  SIMCLR_CHECK(fs::exists(data), "--data '", data, "' does not exist");
  std::string kind = dataset;
  if (kind.empty()) {
    bool subdirs = false, bins = false, ubyte = false;
    if (fs::is_directory(data))
      for (const auto& e : fs::directory_iterator(data)) {
        const std::string n = e.path().filename().string();
        subdirs |= e.is_directory();
        bins |= e.path().extension() == ".bin";
        ubyte |= n.find("-ubyte") != std::string::npos;
      }
    kind = ubyte ? "fashion-mnist" : bins ? "cifar10" : subdirs ? "image-folder" : is_packed_file(data) ? "packed" : "";
    SIMCLR_CHECK(!kind.empty(), "--data '", data, "': cannot tell its kind (a folder of class folders, CIFAR *.bin "
                 "batches or Fashion-MNIST *-ubyte files): give --dataset");
  }
  json& d = root["data"];
  d["path"] = data;
  d["dataset"] = kind;
  d["subset"] = 0;
  if (!test_data.empty()) {
    SIMCLR_CHECK(kind == "image-folder" || kind == "packed", "--test-data is for image-folder and packed datasets (", kind,
                 " has its own test files)");
    d["test_path"] = test_data;
  }
}

namespace {
const char* kUsage =
    "usage: simclr finetune <checkpoint | run dir | encoder.safetensors> [options]\n"
    "  Fine-tunes the encoder plus a new linear classifier on a class-balanced\n"
    "  fraction of the train labels, then prints test top-1/top-5 (docs/evaluation.md).\n"
    "  --fraction F        labelled fraction of each class, (0, 1]          (0.01)\n"
    "  --subset-file FILE  dataset indices to use instead (one per line)\n"
    "  --random-init       the baseline: the same budget from a random encoder\n"
    "  --head-layers K     keep the projection head's first K layers (SimCLR v2: 1) (0)\n"
    "  --epochs N          (60 for fractions <= 1%, else 30)\n"
    "  --batch B           images per step                                 (256)\n"
    "  --lr X              peak learning rate                  (0.05 x B / 256)\n"
    "  --seed S            subset and initialisation seed                    (0)\n"
    "  --out DIR           where the subset and the metrics line go (the run dir\n"
    "                      when the source is one, else none)\n"
    "  --data PATH         transfer: fine-tune and test on another labelled dataset\n"
    "  --dataset KIND      its kind (fashion-mnist|idx|image-folder|cifar10|cifar100;\n"
    "                      detected when not given)\n"
    "  --test-data PATH    image-folder: the test split's root\n"
    "  --set key=value     override a key of the pretraining config (e.g. data.image_size)\n";

double number(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  SIMCLR_CHECK(end != v.c_str() && *end == '\0', "finetune: ", flag, " expects a number, got '", v, "'");
  return x;
}
}  // namespace

int cmd_finetune(int argc, char** argv) {
  FinetuneOptions opt;
  std::vector<std::string> positional, overrides;
  std::string data_path, dataset, test_data;
  bool out_given = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      SIMCLR_CHECK(i + 1 < argc, "finetune: ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      return 0;
    } else if (a == "--fraction") {
      opt.fraction = number(a, next());
      SIMCLR_CHECK(opt.fraction > 0 && opt.fraction <= 1, "finetune: --fraction must be in (0, 1], got ",
                   opt.fraction);
    } else if (a == "--subset-file") {
      opt.subset_file = next();
    } else if (a == "--random-init") {
      opt.random_init = true;
    } else if (a == "--head-layers") {
      const double k = number(a, next());
      SIMCLR_CHECK(k >= 0 && k <= 3 && k == static_cast<int>(k), "finetune: --head-layers must be 0, 1, 2 or 3, got ", k);
      opt.head_layers = static_cast<int>(k);
    } else if (a == "--epochs") {
      const double e = number(a, next());
      SIMCLR_CHECK(e >= 1 && e <= 100000 && e == static_cast<int64_t>(e), "finetune: --epochs must be a whole number "
                   ">= 1, got ", e);
      opt.epochs = static_cast<int64_t>(e);
    } else if (a == "--batch") {
      const double b = number(a, next());
      SIMCLR_CHECK(b >= 2 && b <= 65536 && b == static_cast<int64_t>(b), "finetune: --batch must be a whole number in "
                   "[2, 65536], got ", b);
      opt.batch = static_cast<int64_t>(b);
    } else if (a == "--lr") {
      opt.lr = number(a, next());
      SIMCLR_CHECK(opt.lr > 0 && opt.lr < 100, "finetune: --lr must be in (0, 100), got ", opt.lr);
    } else if (a == "--seed") {
      const double s = number(a, next());
      SIMCLR_CHECK(s >= 0 && s == static_cast<uint64_t>(s), "finetune: --seed must be a whole number >= 0");
      opt.seed = static_cast<uint64_t>(s);
    } else if (a == "--out") {
      opt.out_dir = next();
      out_given = true;
    } else if (a == "--data") {
      data_path = next();
    } else if (a == "--dataset") {
      dataset = next();
    } else if (a == "--test-data") {
      test_data = next();
    } else if (a == "--set") {
      overrides.push_back(next());
    } else if (!a.empty() && a[0] == '-') {
      fail("finetune: unknown option '", a, "' (see simclr finetune --help)");
    } else {
      positional.push_back(a);
    }
  }
  SIMCLR_CHECK(positional.size() == 1, "finetune: expected one checkpoint, run directory or encoder file, got ",
               positional.size(), " arguments\n", kUsage);
  const std::string src = positional[0];
  Checkpoint ck;
  std::string ck_path;
  if (fs::is_directory(src)) {
    std::vector<std::string> skipped;
    ck_path = latest_good_checkpoint(src, &skipped, &ck);
    for (const std::string& s : skipped) std::fprintf(stderr, "warning: skipping a bad checkpoint: %s\n", s.c_str());
    SIMCLR_CHECK(!ck_path.empty(), "finetune: no good checkpoint in '", src, "'");
    if (!out_given) opt.out_dir = src;
  } else {
    SIMCLR_CHECK(fs::exists(src), "finetune: '", src, "' does not exist");
    ck_path = src;
    ck = load_checkpoint_or_export(src);
  }
  SIMCLR_CHECK(ck.meta.contains("config"), "finetune: '", ck_path, "' holds no config (the pretraining run's)");
  json root = ck.meta["config"];
  // The fraction is of the whole train split, not of a pretraining subset (--set data.subset=N restores one).
  if (root.contains("data") && root["data"].is_object()) root["data"]["subset"] = 0;
  apply_transfer_data(root, data_path, dataset, test_data);
  for (const std::string& o : overrides) apply_override(root, o);
  const RunConfig cfg = parse_run_config(root);
  check_data_paths(cfg.data, "train");
  check_data_paths(cfg.data, "test");
  if (!opt.out_dir.empty()) fs::create_directories(opt.out_dir);
  set_compute_threads(cfg.train.threads);
  tune_host_allocator();
  opt.source = ck_path;
  const FinetuneResult r = finetune(cfg, &ck, opt);
  std::printf("finetune (%s, %lld labelled images, %lld epochs): test top-1 %.2f%%  top-5 %.2f%%  (train top-1 "
              "%.2f%%, %.1f s)\n",
              opt.random_init ? "random init" : "pretrained", static_cast<long long>(r.labelled),
              static_cast<long long>(r.epochs), 100 * r.top1, 100 * r.top5, 100 * r.train_top1, r.seconds);
  if (!r.subset_path.empty()) std::printf("subset: %s\n", r.subset_path.c_str());
  return 0;
}

}  // namespace simclr
