// tools/simclr.cpp - the simclr command: one flat main over the library.
//   simclr train run.json [--set key.path=value ...] [--resume]
//   simclr eval <checkpoint | run.json> [--random-init] [--knn] [--no-linear] [--data PATH] [--set ...]
//   simclr quickstart [--epochs N|auto] [--budget S] [--run-dir DIR] [--set ...]
//   simclr preview run.json --out grid.png [...]                (data/preview.h)
//   simclr embed --weights W --data D --out features.npy [...]  (tools/cli/embed_cli.h, train/embed.h)
//   simclr report RUN_DIR [--out DIR]                           (tools/cli/report_cli.h)
//   simclr finetune <checkpoint|run dir|export> [--fraction F]  (tools/cli/finetune_cli.h, train/finetune.h)
//   simclr pack --from SRC --out data.simclr / simclr info FILE  (tools/cli/pack_cli.h, data/packed.h)
//   simclr version
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "tools/cli/pack_cli.h"
#include "tools/cli/preview_cli.h"
#include "tools/cli/report_cli.h"
#include "tools/cli/finetune_cli.h"
#include "engine/check.h"
#include "train/checkpoint.h"
#include "engine/device.h"
#include "train/eval.h"
#include "train/export.h"
#include "engine/fileio.h"
#include "engine/profile.h"
#include "train/run_config.h"
#include "train/trainer.h"
#include "tools/cli/embed_cli.h"
#include "tools/cli/process_env.h"

using namespace simclr;
namespace fs = std::filesystem;

static const char* kUsage =
    "usage: simclr <command> [options]\n"
    "\n"
    "commands:\n"
    "  train RUN.json [--set key.path=value ...] [--resume]\n"
    "      Pretrain an encoder with SimCLR as the config says (docs/config.md lists\n"
    "      every key). The run directory (train.run_dir) receives config.json,\n"
    "      metrics.jsonl and checkpoints. With eval.linear_at_end (default true) a\n"
    "      linear probe of the encoder follows.\n"
    "      --set key.path=value   override one config key (repeatable), e.g.\n"
    "                             --set train.epochs=10 --set optimizer.lr=0.5\n"
    "      --resume               continue from the newest good checkpoint in the\n"
    "                             run directory (same loss trajectory on the CPU)\n"
    "\n"
    "  eval CHECKPOINT [options]      (alias: linear-eval)\n"
    "      Linear probe of the checkpoint's encoder on frozen features of the\n"
    "      labelled train split, scored on the test split (top-1, top-5); results\n"
    "      printed and appended to metrics.jsonl next to the checkpoint. A run\n"
    "      directory picks its newest good checkpoint. An exported encoder\n"
    "      (export_encoder: .safetensors, or a raw export) is accepted too.\n"
    "      --random-init          evaluate the same architecture at random init\n"
    "                             (CHECKPOINT may then be a RUN.json config)\n"
    "      --knn                  also the kNN monitor (k = eval.knn_k, T = eval.knn_temperature)\n"
    "      --no-linear            skip the linear probe (with --knn)\n"
    "      --raw-pixels           also a linear probe on raw pixels\n"
    "      --data PATH            transfer: probe on another labelled dataset (kind\n"
    "                             detected, or --dataset KIND; --test-data PATH: an\n"
    "                             image folder's test root)\n"
    "      --set key.path=value   override a config key (e.g. data.path, eval.l2_grid)\n"
    "\n"
    "  quickstart [options]\n"
    "      The README's main job: SimCLR pretraining on Fashion-MNIST with an embedded\n"
    "      config (ResNet-18, CIFAR stem, width 0.25, batch 256, LARS, tau 0.5; see\n"
    "      docs/results.md), then linear-probe test accuracy of the pretrained encoder\n"
    "      next to a random-init encoder and raw pixels, and the wall time.\n"
    "      --epochs N|auto        pretraining epochs; auto (default): as many as fit the\n"
    "                             budget on this machine with the evaluation after them,\n"
    "                             both measured first (at least 3, the PyTorch reference\n"
    "                             recipe's count); the output names the --epochs N that\n"
    "                             repeats the run exactly\n"
    "      --budget SECONDS       time budget of the whole quickstart for --epochs auto\n"
    "                             (default 585: pretraining + evaluation under 10 minutes)\n"
    "      --run-dir DIR          default runs/quickstart (a previous run there is\n"
    "                             moved to DIR.prev)\n"
    "      --set key.path=value   override any key of the embedded config\n"
    "\n"
    "  preview RUN.json --out grid.png [--n 8] [--seed 0] [--split train|test] [--set ...]\n"
    "      A PNG grid of images and their two augmented views (docs/data.md).\n"
    "\n"
    "  finetune <checkpoint|run dir|encoder.safetensors> [--fraction 0.01] [--random-init] [...]\n"
    "      Fine-tune encoder + linear classifier on a class-balanced fraction of the\n"
    "      labels, then test top-1/top-5 (simclr finetune --help, docs/evaluation.md).\n"
    "\n"
    "  report RUN_DIR [--out DIR]\n"
    "      PNG plots of a run (loss and learning rate, views/s and input wait, kNN and\n"
    "      linear accuracy, the baselines) and report.md; works on a run still going.\n"
    "      Needs python3-matplotlib (docs/evaluation.md).\n"
    "\n"
    "  embed --weights FILE --data PATH --out features.npy [--labels-out labels.npy] [--batch 256]\n"
    "      Encoder features h (float32 .npy) of every image at PATH (image folder,\n"
    "      IDX file, CIFAR folder, packed .npy), preprocessed as in training; FILE is\n"
    "      an exported encoder or a checkpoint. simclr embed --help for details.\n"
    "\n"
    "  pack --from SOURCE --out data.simclr [--max-side 256] [--threads N] [--force]\n"
    "      One packed file of raw uint8 pixels, labels and class names (image folder,\n"
    "      IDX, CIFAR or Fashion-MNIST folder in; docs/data.md), memory-mapped in\n"
    "      training as data.dataset \"packed\". simclr pack --help for details.\n"
    "\n"
    "  info FILE [--verify]\n"
    "      What a packed file holds and its checksum status (--verify: every chunk).\n"
    "\n"
    "  version                    engine version, commit, BLAS and CUDA status\n"
    "\n"
    "Exit status: 0 on success, 1 on any error (the message names the problem).\n";

static double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static std::string fmt_time(double s) {
  char buf[32];
  long t = std::lround(s);
  std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

static void print_profile() {
  std::vector<ProfileEntry> v = profile_snapshot();
  double total = 0;
  for (const ProfileEntry& e : v)
    if (e.name != "backward (total)") total += e.seconds;
  std::printf("time by op (forward ops by name, backward ops as <op>.backward):\n");
  for (const ProfileEntry& e : v)
    std::printf("  %-24s %9.2f s  %5.1f%%  %8lld calls\n", e.name.c_str(), e.seconds,
                e.name == "backward (total)" ? 0.0 : 100.0 * e.seconds / std::max(total, 1e-9),
                static_cast<long long>(e.calls));
}

static void print_probe(const ProbeReport& r) {
  std::printf("%s: %lld train / %lld %s images, %lld features (%.1f s)\n", r.what.c_str(),
              static_cast<long long>(r.train_images), static_cast<long long>(r.test_images),
              r.split == "holdout" ? "held-out" : "test",
              static_cast<long long>(r.dim), r.feature_seconds);
  if (r.linear.seconds > 0)
    std::printf("  linear probe: top-1 %.2f%%  top-5 %.2f%%  (train top-1 %.2f%%, L2 %g, %.1f s)\n",
                100 * r.linear.top1, 100 * r.linear.top5, 100 * r.linear.train_top1, r.linear.l2, r.linear.seconds);
  if (r.has_knn)
    std::printf("  kNN monitor:  top-1 %.2f%%  top-5 %.2f%%  (k = %d%s, %.1f s)\n", 100 * r.knn.top1, 100 * r.knn.top5,
                r.knn.k, r.knn.k < r.knn_k_asked ? ": the bank has fewer images than eval.knn_k" : "", r.knn.seconds);
}

// A "features d/t" progress line on a terminal while features are extracted; none otherwise.
static ProgressFn feature_progress(bool tty) {
  if (!tty) return {};
  return [](int64_t d, int64_t t) {
    std::printf("\r\x1b[Kfeatures %lld/%lld", static_cast<long long>(d), static_cast<long long>(t));
    if (d == t) std::printf("\r\x1b[K");
    std::fflush(stdout);
  };
}

namespace {
int simclr_main(int argc, char** argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd.empty() || cmd == "help" || cmd == "--help" || cmd == "-h") {
      std::printf("%s", kUsage);
      return cmd.empty() ? 1 : 0;
    }
    if (cmd == "preview") return cmd_preview(argc - 1, argv + 1);
    if (cmd == "report") return cmd_report(argc - 1, argv + 1);
    if (cmd == "finetune") return cmd_finetune(argc - 1, argv + 1);
    if (cmd == "embed") return cmd_embed(argc - 1, argv + 1);
    if (cmd == "pack") return cmd_pack(argc - 1, argv + 1);
    if (cmd == "info") return cmd_info(argc - 1, argv + 1);
    if (cmd == "version" || cmd == "--version") {
      std::printf("simclr %s (commit %s)\nBLAS: %s\n", SIMCLR_VERSION, SIMCLR_GIT_COMMIT, blas_info().c_str());
      std::printf("CUDA: %s\n", cuda_available() ? "available" : cuda_unavailable_reason().c_str());
      return 0;
    }
    SIMCLR_CHECK(cmd == "train" || cmd == "eval" || cmd == "linear-eval" || cmd == "quickstart",
                 "unknown command '", cmd, "'\n", kUsage);

    // ---- flags
    std::vector<std::string> positional, overrides;
    bool resume = false, random_init = false, knn = false, no_linear = false, raw_pixels = false;
    int64_t epochs = 0;  // quickstart: 0 = auto
    double budget = 585;
    std::string run_dir, transfer_data, transfer_kind, transfer_test;  // eval --data: transfer
    for (int i = 2; i < argc; i++) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        SIMCLR_CHECK(i + 1 < argc, cmd, ": ", a, " needs a value");
        return argv[++i];
      };
      if (a == "--help" || a == "-h") {
        std::printf("%s", kUsage);
        return 0;
      } else if (a == "--set") {
        overrides.push_back(value());
      } else if (a.rfind("--set=", 0) == 0) {
        overrides.push_back(a.substr(6));
      } else if (a == "--resume" && cmd == "train") {
        resume = true;
      } else if (a == "--random-init" && cmd != "train" && cmd != "quickstart") {
        random_init = true;
      } else if (a == "--knn" && cmd != "train" && cmd != "quickstart") {
        knn = true;
      } else if (a == "--no-linear" && cmd != "train" && cmd != "quickstart") {
        no_linear = true;
      } else if (a == "--raw-pixels" && cmd != "train" && cmd != "quickstart") {
        raw_pixels = true;
      } else if (a == "--epochs" && cmd == "quickstart") {
        std::string v = value();
        char* end = nullptr;
        epochs = v == "auto" ? 0 : std::strtoll(v.c_str(), &end, 10);
        SIMCLR_CHECK(v == "auto" || (end && *end == 0 && epochs >= 1),
                     "quickstart: --epochs expects a positive integer or auto, got '", v, "'");
      } else if (a == "--budget" && cmd == "quickstart") {
        std::string v = value();
        char* end = nullptr;
        budget = std::strtod(v.c_str(), &end);
        SIMCLR_CHECK(end && *end == 0 && budget >= 10 && budget <= 1e6,
                     "quickstart: --budget expects seconds in [10, 1000000], got '", v, "'");
      } else if (a == "--run-dir" && cmd == "quickstart") {
        run_dir = value();
      } else if (a == "--data" && (cmd == "eval" || cmd == "linear-eval")) {
        transfer_data = value();
      } else if (a == "--dataset" && (cmd == "eval" || cmd == "linear-eval")) {
        transfer_kind = value();
      } else if (a == "--test-data" && (cmd == "eval" || cmd == "linear-eval")) {
        transfer_test = value();
      } else if (!a.empty() && a[0] == '-') {
        fail(cmd, ": unknown option '", a, "' (see simclr --help)");
      } else {
        positional.push_back(a);
      }
    }
    const bool tty = isatty(fileno(stdout));

    // ---- simclr train
    if (cmd == "train") {
      SIMCLR_CHECK(positional.size() == 1, "train: expected one config file, got ", positional.size(),
                   " arguments (usage: simclr train RUN.json [--set key=value ...] [--resume])");
      RunConfig cfg = load_run_config(positional[0], overrides);
      TrainOptions opt;
      opt.resume = resume;
      opt.tty = tty;
      TrainResult r = train(cfg, opt);
      if (r.rank != 0) return r.stopped_by_signal != 0 ? 128 + r.stopped_by_signal : 0;  // rank 0 reports and probes
      std::printf("trained steps %lld..%lld of %lld in %s (%.0f views/s); checkpoint %s\n",
                  static_cast<long long>(r.start_step), static_cast<long long>(r.end_step),
                  static_cast<long long>(r.total_steps), fmt_time(r.seconds).c_str(), r.views_per_second,
                  r.last_checkpoint.c_str());
      if (cfg.train.profile) print_profile();
      if (r.stopped_by_signal != 0) return 128 + r.stopped_by_signal;  // the shell's convention for a signal
      if (r.finished && (cfg.eval.linear_at_end || cfg.eval.random_init || cfg.eval.raw_pixels)) {
        Checkpoint ck = load_checkpoint(r.last_checkpoint);
        SimclrModel m(cfg.model, nullptr);
        load_model_tensors(ck, m.store, /*skip_head=*/true);
        if (cfg.eval.linear_at_end) {
          ProbeReport p = probe_encoder(*m.encoder, cfg, true, false, "encoder");
          print_probe(p);
          json line = p.to_json();
          line["eval"] = "linear";
          line["step"] = r.end_step;
          line["checkpoint"] = r.last_checkpoint;
          append_metrics(cfg.train.run_dir, line);
        }
        if (cfg.eval.random_init) {
          SimclrModel rnd(cfg.model, nullptr);
          rnd.init(cfg.train.seed);
          ProbeReport p = probe_encoder(*rnd.encoder, cfg, true, false, "random-init encoder");
          print_probe(p);
          json line = p.to_json();
          line["eval"] = "linear";
          append_metrics(cfg.train.run_dir, line);
        }
        if (cfg.eval.raw_pixels) {
          ProbeReport p = probe_pixels(cfg);
          print_probe(p);
          json line = p.to_json();
          line["eval"] = "linear";
          append_metrics(cfg.train.run_dir, line);
        }
      }
      return 0;
    }

    // ---- simclr eval / linear-eval
    if (cmd == "eval" || cmd == "linear-eval") {
      SIMCLR_CHECK(positional.size() == 1, cmd, ": expected one checkpoint (or run directory), got ",
                   positional.size(), " arguments");
      SIMCLR_CHECK(!(no_linear && !knn), cmd, ": --no-linear leaves nothing to do without --knn");
      std::string src = positional[0];
      json root;
      Checkpoint ck;
      std::string ck_path;
      const bool is_json = fs::path(src).extension() == ".json";
      if (is_json) {
        SIMCLR_CHECK(random_init, cmd, ": a config file ('", src, "') is only accepted with --random-init");
        root = read_json_file(src);
      } else {
        if (fs::is_directory(src)) {
          std::vector<std::string> skipped;
          ck_path = latest_good_checkpoint(src, &skipped, &ck);
          for (const std::string& s : skipped) std::fprintf(stderr, "warning: skipping a bad checkpoint: %s\n", s.c_str());
          SIMCLR_CHECK(!ck_path.empty(), cmd, ": no good checkpoint in '", src, "'");
        } else {
          ck_path = src;
          ck = load_checkpoint_or_export(src);  // a checkpoint or an export_encoder output
        }
        SIMCLR_CHECK(ck.meta.contains("config"), "checkpoint '", ck_path, "' holds no config");
        root = ck.meta["config"];
      }
      apply_transfer_data(root, transfer_data, transfer_kind, transfer_test);
      for (const std::string& o : overrides) apply_override(root, o);
      RunConfig cfg = parse_run_config(root);
      check_data_paths(cfg.data, "train");
      if (cfg.eval.holdout == 0) check_data_paths(cfg.data, "test");  // a holdout never opens the test split
      set_compute_threads(cfg.train.threads);
      tune_host_allocator();
      SimclrModel m(cfg.model, nullptr);
      std::string what = "encoder";
      if (random_init) {
        m.init(cfg.train.seed);
        what = "random-init encoder";
      } else {
        load_model_tensors(ck, m.store, /*skip_head=*/true);
      }
      std::printf("simclr %s: %s %s width %g (%s stem)%s%s\n", cmd.c_str(), what.c_str(),
                  m.encoder->arch_name().c_str(), cfg.model.width, cfg.model.stem.c_str(),
                  ck_path.empty() ? "" : ", checkpoint ", ck_path.c_str());
      const ProgressFn progress = feature_progress(tty);
      ProbeReport p = probe_encoder(*m.encoder, cfg, !no_linear, knn, what, progress);
      print_probe(p);
      json line = p.to_json();
      line["eval"] = knn && no_linear ? "knn" : "linear";
      if (!ck_path.empty()) {
        line["checkpoint"] = ck_path;
        line["step"] = ck.meta.contains("state") && ck.meta["state"].is_object() ? ck.meta["state"].value("step", 0) : 0;
      }
      std::vector<json> lines = {line};
      if (raw_pixels) {
        ProbeReport px = probe_pixels(cfg);
        print_probe(px);
        json l2 = px.to_json();
        l2["eval"] = "linear";
        lines.push_back(l2);
      }
      if (!ck_path.empty())
        for (const json& l : lines) append_metrics(fs::path(ck_path).parent_path().string(), l);
      return 0;
    }

    // ---- simclr quickstart
    SIMCLR_CHECK(positional.empty(), "quickstart: unexpected argument '", positional.empty() ? "" : positional[0], "'");
    const double t_all = now_s();
    json root = quickstart_config();
    if (!run_dir.empty()) root["train"]["run_dir"] = run_dir;
    for (const std::string& o : overrides) apply_override(root, o);
    RunConfig cfg = parse_run_config(root);
    check_run_paths(cfg);
    std::printf("simclr quickstart: SimCLR on Fashion-MNIST, then linear evaluation against two baselines\n");
    const int cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    int usable = cores;  // fewer under taskset, a cgroup cpuset or a batch system's binding
    if (cpu_set_t set; sched_getaffinity(0, sizeof set, &set) == 0) usable = CPU_COUNT(&set);
    const std::string usable_note =
        usable < cores ? " (" + std::to_string(usable) + " usable by this process)" : std::string();
    std::printf("machine: %d CPU cores%s; BLAS: %s; CUDA: %s\n", cores, usable_note.c_str(), blas_info().c_str(),
                cuda_available() ? "available" : cuda_unavailable_reason().c_str());
    const json embedded = quickstart_config();
    // bf16 where the CPU has oneDNN's bf16 convolution kernels (AVX512-BF16, AMX) and
    // the run is on the CPU, unless --set train.precision chose: the same recipe,
    // about 1.3x the fp32 step there (docs/results.md). A pure function of the
    // machine, so the repeat command below repeats it.
    const bool precision_set = root["train"].contains("precision");
    if (!precision_set && !cuda_available() && cpu_has_fast_bf16()) {
      root["train"]["precision"] = "bf16";
      cfg = parse_run_config(root);
      std::printf("precision: bf16 (this CPU has oneDNN bf16 convolution kernels; fp32 master weights, BN "
                  "statistics and loss; --set train.precision=fp32 trains in fp32)\n");
    }
    if (epochs == 0 && root["train"]["epochs"] != embedded["train"]["epochs"])
      epochs = root["train"]["epochs"].get<int64_t>();  // --set train.epochs=N
    json calibration = {{"epochs_from", epochs == 0 ? "calibration" : "--epochs"}};
    if (epochs == 0) {
      // As many epochs as fit the budget after the calibration itself and the evaluation
      // (at least the reference recipe's 3), the warm-up kept at 5% of the steps.
      StepTiming t = measure_step_seconds(cfg, 4);
      const EvalEstimate ev = estimate_eval_seconds(cfg, cfg.eval.random_init ? 2 : 1, cfg.eval.raw_pixels);
      const double epoch_s = t.seconds_per_step * static_cast<double>(t.steps_per_epoch);
      const double left = budget - (now_s() - t_all) - ev.total();
      epochs = std::clamp<int64_t>(static_cast<int64_t>(left / (1.03 * epoch_s)), 3, 100);
      std::printf("calibration: %.3f s/step, evaluation about %s on this machine -> %lld epochs (%lld steps, "
                  "about %s) for the %s budget%s\n",
                  t.seconds_per_step, fmt_time(ev.total()).c_str(), static_cast<long long>(epochs),
                  static_cast<long long>(epochs * t.steps_per_epoch),
                  fmt_time(epoch_s * static_cast<double>(epochs)).c_str(), fmt_time(budget).c_str(),
                  epoch_s * 3 > left ? " (3 epochs do not fit: running the minimum anyway)" : "");
      calibration["seconds_per_step"] = t.seconds_per_step;
      calibration["step_precision"] = t.compute_dtype == DType::bf16 ? "bf16" : "fp32";
      calibration["eval_estimate_seconds"] = ev.total();
      calibration["budget_seconds"] = budget;
    }
    // The timing only chose the epoch count: with it fixed the run is deterministic on this
    // machine and thread count, so this command repeats it to the last digit.
    std::string repeat = "simclr quickstart --epochs " + std::to_string(epochs);
    if (!run_dir.empty()) repeat += " --run-dir " + run_dir;
    for (const std::string& o : overrides) repeat += " --set " + o;
    std::printf("epochs: %lld (%s); to repeat this run exactly: %s\n", static_cast<long long>(epochs),
                calibration["epochs_from"].get<std::string>().c_str(), repeat.c_str());
    calibration["repeat"] = repeat;
    root["train"]["epochs"] = epochs;
    if (root["schedule"]["warmup_epochs"] == embedded["schedule"]["warmup_epochs"])
      root["schedule"]["warmup_epochs"] = 0.05 * static_cast<double>(epochs);  // 5% unless --set
    cfg = parse_run_config(root);
    if (fs::exists(cfg.train.run_dir) && !fs::is_empty(cfg.train.run_dir)) {
      if (fs::is_directory(cfg.train.run_dir)) DirLock busy(cfg.train.run_dir, "the run directory");  // a run there now: error
      const std::string prev = cfg.train.run_dir + ".prev";
      fs::remove_all(prev);
      fs::rename(cfg.train.run_dir, prev);
      std::printf("note: moved the previous run in %s to %s\n", cfg.train.run_dir.c_str(), prev.c_str());
    }
    TrainOptions opt;
    opt.tty = tty;
    TrainResult tr = train(cfg, opt);
    if (cfg.train.profile) print_profile();
    if (tr.stopped_by_signal != 0) return 128 + tr.stopped_by_signal;
    SIMCLR_CHECK(tr.finished, "quickstart: training stopped at step ", tr.end_step, " of ", tr.total_steps,
                 " (train.max_steps); no evaluation");

    const ProgressFn progress = feature_progress(tty);
    const double t_eval = now_s();
    Checkpoint ck = load_checkpoint(tr.last_checkpoint);
    SimclrModel pre(cfg.model, nullptr);
    load_model_tensors(ck, pre.store, /*skip_head=*/true);
    ProbeReport p_pre = probe_encoder(*pre.encoder, cfg, true, false, "SimCLR encoder", progress);
    print_probe(p_pre);
    // The two baselines unless --set eval.random_init=false / eval.raw_pixels=false
    // (benchmarks/recipe_study.sh --baselines-once: they do not depend on the recipe).
    std::optional<ProbeReport> p_rnd, p_px;
    if (cfg.eval.random_init) {
      SimclrModel rnd(cfg.model, nullptr);
      rnd.init(cfg.train.seed);
      p_rnd = probe_encoder(*rnd.encoder, cfg, true, false, "random-init encoder", progress);
      print_probe(*p_rnd);
    }
    if (cfg.eval.raw_pixels) {
      p_px = probe_pixels(cfg);
      print_probe(*p_px);
    }
    const double eval_s = now_s() - t_eval, all_s = now_s() - t_all;

    json results = {{"pretrain_seconds", tr.seconds},
                    {"views_per_second", tr.views_per_second},
                    {"eval_seconds", eval_s},
                    {"total_seconds", all_s},
                    {"epochs", cfg.train.epochs},
                    {"calibration", calibration},
                    {"encoder", p_pre.to_json()},
                    {"split", cfg.eval.holdout > 0 ? "holdout" : "test"},
                    {"holdout", cfg.eval.holdout},
                    {"commit", SIMCLR_GIT_COMMIT},
                    {"cores", cores}};
    if (p_rnd) results["random_init"] = p_rnd->to_json();
    if (p_px) results["raw_pixels"] = p_px->to_json();
    write_file_atomic((fs::path(cfg.train.run_dir) / "results.json").string(), results.dump(2) + "\n");
    for (const ProbeReport* p : {&p_pre, p_rnd ? &*p_rnd : nullptr, p_px ? &*p_px : nullptr}) {
      if (!p) continue;
      json l = p->to_json();
      l["eval"] = "linear";
      append_metrics(cfg.train.run_dir, l);
    }
    std::printf("\n");
    std::printf("quickstart results: Fashion-MNIST, %s width %g (%s stem), %lld epochs, batch %lld\n",
                pre.encoder->arch_name().c_str(), cfg.model.width, cfg.model.stem.c_str(),
                static_cast<long long>(cfg.train.epochs), static_cast<long long>(cfg.train.batch));
    if (cfg.eval.holdout > 0)
      std::printf("  linear probe, held-out top-1 (top-5) (eval.holdout %g: %lld training images held out, "
                  "the test split not used):\n",
                  cfg.eval.holdout, static_cast<long long>(p_pre.test_images));
    else
      std::printf("  linear probe, test top-1 (top-5):\n");
    std::printf("    SimCLR encoder        %6.2f%%  (%.2f%%)\n", 100 * p_pre.linear.top1, 100 * p_pre.linear.top5);
    if (p_rnd)
      std::printf("    random-init encoder   %6.2f%%  (%.2f%%)\n", 100 * p_rnd->linear.top1, 100 * p_rnd->linear.top5);
    else
      std::printf("    random-init encoder   not run (eval.random_init false)\n");
    if (p_px)
      std::printf("    raw pixels            %6.2f%%  (%.2f%%)\n", 100 * p_px->linear.top1, 100 * p_px->linear.top5);
    else
      std::printf("    raw pixels            not run (eval.raw_pixels false)\n");
    std::printf("  pretraining wall time   %s  (%.0f views/s)\n", fmt_time(tr.seconds).c_str(), tr.views_per_second);
    if (calibration.contains("eval_estimate_seconds"))
      std::printf("  evaluation wall time    %s (estimated before training: %s)\n", fmt_time(eval_s).c_str(),
                  fmt_time(calibration["eval_estimate_seconds"].get<double>()).c_str());
    else
      std::printf("  evaluation wall time    %s\n", fmt_time(eval_s).c_str());
    std::printf("  total wall time         %s\n", fmt_time(all_s).c_str());
    std::printf("  repeat exactly          %s\n", repeat.c_str());
    std::printf("  run directory           %s (results.json, metrics.jsonl, checkpoints)\n",
                cfg.train.run_dir.c_str());
    std::string why;
    const std::string report = write_report_quietly(cfg.train.run_dir, &why);
    if (!report.empty())
      std::printf("  report                  %s (plots: simclr report %s)\n", report.c_str(), cfg.train.run_dir.c_str());
    else
      std::printf("  report                  not written: %s\n", why.c_str());
    return 0;
  } catch (const std::bad_alloc&) {
    if (isatty(fileno(stdout))) std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "error: out of memory (an allocation failed): lower train.batch, data.image_size, "
                         "model.width or head sizes, or eval.batch\n");
    return 1;
  } catch (const std::exception& e) {  // simclr::Error and anything else: a message, never a crash
    if (isatty(fileno(stdout))) std::printf("\n");  // end a live progress line
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
}  // namespace

int main(int argc, char** argv) {
  tune_process_environment(argv);  // may re-execute this program once (tools/cli/process_env.h)
  // Line-buffered even into a pipe or file: a line printed is out, so a
  // signal that ends the process (e.g. SIGTERM during the final probe) loses none.
  std::setvbuf(stdout, nullptr, _IOLBF, 1 << 16);
  const int rc = simclr_main(argc, argv);
  // Output that could not be written (a full disk, a closed pipe) is a failure, not a success.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "error: cannot write the standard output: %s\n", std::strerror(errno));
    return rc == 0 ? 1 : rc;
  }
  return rc;
}
