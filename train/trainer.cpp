// train/trainer.cpp - the training loop (see trainer.h).
#include "train/trainer.h"

#include <cblas.h>
#include <strings.h>
#include <malloc.h>
#include <omp.h>
#include <unistd.h>

#include <csignal>

#include <chrono>
#include <cstdarg>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/loader.h"
#include "engine/autograd.h"
#include "train/checkpoint.h"
#include "engine/device.h"
#include "train/eval.h"
#include "engine/fileio.h"
#include "losses/losses.h"
#include "engine/profile.h"
#include "optim/adamw.h"
#include "optim/lars.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

namespace simclr {

namespace fs = std::filesystem;

SimclrModel::SimclrModel(const ResNetConfig& model, const HeadConfig* head_cfg) {
  encoder = std::make_unique<ResNet>(model, store);
  if (head_cfg) head = std::make_unique<ProjectionHead>(*head_cfg, encoder->feature_dim(), store);
  store.materialize();
}

void SimclrModel::init(uint64_t seed) {
  encoder->init(seed);
  if (head) head->init(seed);
}

json model_arch_json(const RunConfig& c, const SimclrModel& m) {
  return {{"encoder", m.encoder->arch_name()},
          {"depth", c.model.depth},
          {"width", c.model.width},
          {"stem", c.model.stem},
          {"in_channels", c.model.in_channels},
          {"image_size", c.data.image_size},
          {"feature_dim", m.encoder->feature_dim()},
          {"mean", c.data.mean},
          {"std", c.data.std},
          {"layout", "NHWC activations, OHWI conv weights, OI linear weights"},
          {"head", {{"depth", c.head.depth}, {"hidden", c.head.hidden}, {"out", c.head.out}, {"bn", c.head.bn}}}};
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, ParamStore& store) {
  if (c.name == "lars") {
    LarsConfig l;
    l.momentum = c.momentum;
    l.eta = c.eta;
    l.weight_decay = c.weight_decay;
    l.nesterov = c.nesterov;
    return std::make_unique<Lars>(l, store);
  }
  if (c.name == "sgd") {
    SgdConfig s;
    s.momentum = c.momentum;
    s.nesterov = c.nesterov;
    s.weight_decay = c.weight_decay;
    s.decay_excluded = true;
    return std::make_unique<Sgd>(s, store);
  }
  AdamWConfig a;
  a.beta1 = c.beta1;
  a.beta2 = c.beta2;
  a.eps = c.eps;
  a.weight_decay = c.weight_decay;
  a.decay_excluded = true;
  return std::make_unique<AdamW>(a, store);
}

namespace {
// OpenBLAS would run its Haswell/Zen (AVX2) kernels on a CPU that has AVX-512.
bool blas_avx512_upgrade() {
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (forced != nullptr && strcasecmp(forced, "haswell") != 0 && strcasecmp(forced, "zen") != 0) return false;
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
    return false;
  const std::string core = openblas_get_corename();
  return strcasecmp(core.c_str(), "haswell") == 0 || strcasecmp(core.c_str(), "zen") == 0;
}
}  // namespace

void tune_process_environment(char** argv) {
  if (std::getenv("SIMCLR_KEEP_ENV") != nullptr || std::getenv("SIMCLR_ENV_TUNED") != nullptr) return;
  bool changed = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    changed = true;
  }
  if (blas_avx512_upgrade()) {
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    changed = true;
  }
  if (!changed) return;
  setenv("SIMCLR_ENV_TUNED", "1", 1);  // once only
  execv("/proc/self/exe", argv);       // returns only on failure: carry on as we are
}

void tune_host_allocator() {
  // Each step allocates the same activation and gradient buffers again (up
  // to ~26 MB each for the quickstart model). glibc would map the larger ones
  // fresh with mmap and return them at free, so every step pays the page
  // faults again; a fixed 32 MiB mmap threshold (glibc's maximum) and a high
  // trimming switched off keep them in the heap for reuse. Measured on the
  // quickstart step: about 1.5x faster on this machine.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, -1);  // never give heap memory back
}

int set_compute_threads(int threads) {
  int n = threads > 0 ? threads : omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return n;
}

Device resolve_device(const std::string& requested, std::string* note) {
  note->clear();
  if (requested == "cpu") return Device::cpu();
  const bool gpu = cuda_available();
  if (requested == "auto") {
    if (gpu)
      *note = "a GPU is present (" + cuda_device_name(0) +
              ") but the CUDA backend does not cover the whole model yet: training runs on the CPU for now";
    return Device::cpu();
  }
  Device d = Device::parse(requested);
  SIMCLR_CHECK(gpu, "train.device = \"", requested, "\" but no GPU is usable: ", cuda_unavailable_reason());
  SIMCLR_CHECK(d.index < cuda_device_count(), "train.device = \"", requested, "\" but only ", cuda_device_count(),
               " GPU(s) are present");
  *note = "train.device = \"" + requested +
          "\": the CUDA backend does not cover the whole model yet, training runs on the CPU for now";
  return Device::cpu();
}

void append_metrics(const std::string& run_dir, const json& line) {
  std::ofstream f(fs::path(run_dir) / "metrics.jsonl", std::ios::app);
  SIMCLR_CHECK(f.good(), "cannot append to '", (fs::path(run_dir) / "metrics.jsonl").string(), "'");
  f << line.dump() << "\n";
}

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = std::lround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

void say(const TrainOptions& opt, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void say(const TrainOptions& opt, const char* fmt, ...) {
  if (!opt.out) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(opt.out, fmt, ap);
  va_end(ap);
  std::fflush(opt.out);
}

// Keeps the metrics lines up to and including `step` (a resumed run rewrites
// what the interrupted one logged after its checkpoint).
void truncate_metrics(const std::string& run_dir, int64_t step) {
  fs::path p = fs::path(run_dir) / "metrics.jsonl";
  if (!fs::exists(p)) return;
  std::istringstream in(read_file(p.string()));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() > step) continue;
    } catch (const json::exception&) {
      continue;  // a torn last line from a kill
    }
    kept += line + "\n";
  }
  write_file_atomic(p.string(), kept);
}

}  // namespace

namespace {
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  if (sig == SIGINT) std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C kills at once
}

// Installs the graceful-stop handlers for its lifetime, restores the previous ones.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // loader waits and file writes carry on
    for (int i = 0; i < 3; i++) sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~StopSignals() {
    for (int i = 0; i < 3; i++) sigaction(kSignals[i], &old_[i], nullptr);
    g_stop_signal = 0;
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static int pending() { return g_stop_signal; }

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGUSR1};
  struct sigaction old_[3];
};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}
}  // namespace

TrainResult train(const RunConfig& cfg, const TrainOptions& opt) {
  TrainResult res;
  StopSignals stop_signals;
  const TrainConfig& tc = cfg.train;
  check_run_paths(cfg);
  std::string note;
  Device device = resolve_device(tc.device, &note);
  (void)device;
  if (!note.empty()) say(opt, "note: %s\n", note.c_str());
  const int threads = set_compute_threads(tc.threads);
  tune_host_allocator();
  const json resolved = run_config_to_json(cfg);

  // ---- run directory
  std::error_code ec;
  fs::create_directories(tc.run_dir, ec);
  SIMCLR_CHECK(fs::is_directory(tc.run_dir), "cannot create the run directory '", tc.run_dir, "': ", ec.message());
  Checkpoint ck;
  std::string ck_path;
  if (opt.resume) {
    std::vector<std::string> skipped;
    ck_path = latest_good_checkpoint(tc.run_dir, &skipped, &ck);
    for (const std::string& s : skipped) say(opt, "warning: skipping a bad checkpoint: %s\n", s.c_str());
    if (ck_path.empty())
      say(opt, "note: --resume: no checkpoint in '%s', starting from the beginning\n", tc.run_dir.c_str());
  } else {
    std::vector<std::string> existing = list_checkpoints(tc.run_dir);
    SIMCLR_CHECK(existing.empty(), "the run directory '", tc.run_dir, "' already holds checkpoints (latest: ",
                 existing.empty() ? "" : existing.back(),
                 "): pass --resume to continue that run, or choose another train.run_dir");
  }
  if (!ck_path.empty()) {
    std::string diff = config_mismatch(ck.meta.value("config", json::object()), resolved);
    SIMCLR_CHECK(diff.empty(), "cannot resume from '", ck_path, "': the config differs at ", diff);
  }
  write_file_atomic((fs::path(tc.run_dir) / "config.json").string(), resolved.dump(2) + "\n");

  // ---- data
  std::shared_ptr<Dataset> train_ds = open_dataset(cfg.data, cfg.data.split);
  Loader loader(train_ds, cfg.data, train_loader_options(cfg.data, tc.batch, tc.seed));
  const int64_t spe = loader.batches_per_epoch();
  const int64_t total = spe * tc.epochs;
  const int64_t warmup = warmup_steps_from_epochs(cfg.warmup_epochs, spe, total);
  const double peak = scaled_base_lr(cfg.optimizer.lr, cfg.optimizer.lr_scaling, tc.batch);
  Schedule sched(peak, warmup, total);

  // ---- model and optimiser
  SimclrModel model(cfg.model, &cfg.head);
  model.init(tc.seed);
  std::unique_ptr<Optimizer> optim = make_optimizer(cfg.optimizer, model.store);
  int64_t step = 0;
  json prev_metrics = json::object();
  if (!ck_path.empty()) {
    load_model_tensors(ck, model.store);
    for (auto& [name, t] : optim->state()) {
      const CheckpointTensor* c = ck.find(name, "optimizer");
      SIMCLR_CHECK(c != nullptr && c->tensor.shape() == t.shape() && c->tensor.dtype() == t.dtype(), "checkpoint '",
                   ck_path, "': optimiser state '", name, "' is missing or has another shape");
      t.copy_from(c->tensor);
    }
    step = ck.meta["state"]["step"].get<int64_t>();
    SIMCLR_CHECK(ck.meta["state"]["steps_per_epoch"].get<int64_t>() == spe, "cannot resume from '", ck_path,
                 "': it has ", ck.meta["state"]["steps_per_epoch"].get<int64_t>(), " steps per epoch, this run ", spe);
    prev_metrics = ck.meta.value("metrics", json::object());
    loader.seek({step / spe, step % spe});
    truncate_metrics(tc.run_dir, step);
    say(opt, "resuming from %s (step %lld, epoch %lld)\n", ck_path.c_str(), static_cast<long long>(step),
        static_cast<long long>(step / spe));
  } else {
    std::error_code e2;
    fs::remove(fs::path(tc.run_dir) / "metrics.jsonl", e2);
  }
  res.start_step = res.end_step = step;
  res.total_steps = total;
  const int64_t stop_at = tc.max_steps > 0 ? std::min(total, tc.max_steps) : total;

  size_t nparams = 0;
  for (const Param& p : model.store.params())
    if (p.trainable() && !(p.flags & kIsHead)) nparams += static_cast<size_t>(p.shape.numel());
  say(opt,
      "simclr train: %s width %g (%s stem), %.2fM encoder params, %s; %lld images, batch %lld (%lld views), "
      "%lld steps/epoch x %lld epochs, %s peak lr %g, warm-up %lld steps, tau %g; CPU, %d threads; run dir %s\n",
      model.encoder->arch_name().c_str(), cfg.model.width, cfg.model.stem.c_str(), nparams / 1e6,
      train_ds->describe().c_str(), static_cast<long long>(train_ds->size()), static_cast<long long>(tc.batch),
      static_cast<long long>(2 * tc.batch), static_cast<long long>(spe), static_cast<long long>(tc.epochs),
      cfg.optimizer.name.c_str(), peak, static_cast<long long>(warmup), cfg.temperature, threads, tc.run_dir.c_str());

  // ---- helpers
  std::shared_ptr<Dataset> test_ds;
  auto run_knn = [&](int64_t epoch) {
    if (!test_ds) test_ds = open_dataset(cfg.data, "test");
    double t0 = now_s();
    FeatureSet ftr = encoder_features(*model.encoder, train_ds, cfg.data, cfg.eval.batch);
    FeatureSet fte = encoder_features(*model.encoder, test_ds, cfg.data, cfg.eval.batch);
    KnnResult r = knn_eval(ftr, fte, cfg.eval.knn_k, cfg.eval.knn_temperature);
    json line = {{"eval", "knn"}, {"step", step},      {"epoch", epoch},           {"top1", r.top1},
                 {"top5", r.top5}, {"k", cfg.eval.knn_k}, {"temperature", cfg.eval.knn_temperature},
                 {"seconds", now_s() - t0}};
    append_metrics(tc.run_dir, line);
    prev_metrics["knn_top1"] = r.top1;
    say(opt, "%sepoch %lld: kNN (k=%d, T=%g) top-1 %.2f%%, top-5 %.2f%% (%.1f s)\n", opt.tty ? "\r\x1b[K" : "",
        static_cast<long long>(epoch), cfg.eval.knn_k, cfg.eval.knn_temperature, 100 * r.top1, 100 * r.top5,
        now_s() - t0);
  };
  auto save = [&](double last_loss) {
    Checkpoint c;
    c.meta["format"] = "simclr-checkpoint";
    c.meta["engine"] = {{"version", SIMCLR_VERSION}, {"commit", SIMCLR_GIT_COMMIT}};
    c.meta["arch"] = model_arch_json(cfg, model);
    c.meta["config"] = resolved;
    c.meta["state"] = {{"step", step},
                       {"epoch", step / spe},
                       {"batch_in_epoch", step % spe},
                       {"steps_per_epoch", spe},
                       {"total_steps", total},
                       {"seed", tc.seed},
                       {"loader", {{"epoch", step / spe}, {"batch", step % spe}}},
                       {"optimizer", optim->name()},
                       {"lr_next", sched.lr(step)}};
    prev_metrics["loss"] = last_loss;
    c.meta["metrics"] = prev_metrics;
    add_model_tensors(c, model.store);
    for (auto& [name, t] : optim->state()) c.tensors.push_back({name, "optimizer", 0, t.clone()});
    std::string path = checkpoint_path(tc.run_dir, step);
    save_checkpoint(path, c);
    prune_checkpoints(tc.run_dir, tc.keep_last);
    res.last_checkpoint = path;
    res.summary = prev_metrics;
  };

  // ---- the loop
  if (tc.profile) {
    profile_reset();
    profile_enable(true);
  }
  const double t_start = now_s();
  double t_last = t_start, epoch_loss = 0, last_loss = prev_metrics.value("loss", 0.0);
  int64_t epoch_steps = 0, views_since = 0, steps_this_call = 0;
  while (step < stop_at) {
    if (opt.crash_after_steps >= 0 && steps_this_call >= opt.crash_after_steps) {
      clear_tape();
      res.end_step = step;
      res.seconds = now_s() - t_start;
      return res;  // simulated kill: no checkpoint, no summary
    }
    const int64_t epoch = step / spe;
    Batch batch;
    {
      OpTimer t("data (wait)");
      batch = loader.next();
    }
    SIMCLR_ASSERT(batch.epoch == epoch && batch.index == step % spe);
    model.store.zero_grad();
    Tensor h = model.encoder->forward(batch.views, true);
    Tensor z = model.head->forward(h, true);
    Tensor loss;
    {
      OpTimer t("ntxent");
      loss = ntxent(z, cfg.temperature);
    }
    double lv = loss.item();
    if (step == opt.poison_step) lv = std::nan("");
    if (!std::isfinite(lv)) {
      clear_tape();
      std::string last = list_checkpoints(tc.run_dir).empty() ? "none" : list_checkpoints(tc.run_dir).back();
      append_metrics(tc.run_dir, {{"event", "non-finite loss"}, {"step", step}, {"epoch", epoch}});
      fail("the loss is not finite (", lv, ") at step ", step, " (epoch ", epoch, ", batch ", step % spe,
           "): training stopped before the update. The last good checkpoint is ", last,
           " (lower optimizer.lr or check the data, then --resume)");
    }
    {
      OpTimer t("backward (total)");
      backward(loss);
    }
    const double lr = sched.lr(step);
    {
      OpTimer t("optimizer");
      optim->step(lr);
    }
    step++;
    steps_this_call++;
    res.losses.emplace_back(step - 1, lv);
    last_loss = lv;
    epoch_loss += lv;
    epoch_steps++;
    views_since += 2 * batch.size();

    const double t_now = now_s();
    const double elapsed = t_now - t_start;
    const double vps = static_cast<double>(2 * tc.batch * steps_this_call) / std::max(elapsed, 1e-9);
    const double eta = static_cast<double>(stop_at - step) * elapsed / static_cast<double>(steps_this_call);
    const bool log_now = step % tc.log_interval == 0 || step == stop_at;
    if (log_now) {
      const double vps_recent = static_cast<double>(views_since) / std::max(t_now - t_last, 1e-9);
      append_metrics(tc.run_dir, {{"step", step},
                                  {"epoch", static_cast<double>(step) / static_cast<double>(spe)},
                                  {"loss", lv},
                                  {"lr", lr},
                                  {"views_per_s", vps_recent},
                                  {"time_s", elapsed}});
      t_last = t_now;
      views_since = 0;
    }
    if (opt.tty) {
      say(opt, "\r\x1b[Kepoch %lld/%lld  step %lld/%lld  loss %.4f  lr %.4f  %.0f views/s  ETA %s",
          static_cast<long long>(epoch + 1), static_cast<long long>(tc.epochs), static_cast<long long>(step),
          static_cast<long long>(total), lv, lr, vps, fmt_duration(eta).c_str());
    } else if (log_now) {
      say(opt, "epoch %lld/%lld step %lld/%lld loss %.4f lr %.4f %.0f views/s ETA %s\n",
          static_cast<long long>(epoch + 1), static_cast<long long>(tc.epochs), static_cast<long long>(step),
          static_cast<long long>(total), lv, lr, vps, fmt_duration(eta).c_str());
    }

    if (opt.signal_after_steps >= 0 && steps_this_call == opt.signal_after_steps) std::raise(opt.signal_to_raise);
    bool saved_now = false;
    const bool epoch_end = step % spe == 0;
    if (epoch_end) {
      const int64_t done_epochs = step / spe;
      const double mean_loss = epoch_loss / static_cast<double>(std::max<int64_t>(epoch_steps, 1));
      append_metrics(tc.run_dir, {{"step", step}, {"epoch", done_epochs}, {"epoch_loss", mean_loss}, {"time_s", elapsed}});
      prev_metrics["epoch_loss"] = mean_loss;
      prev_metrics["epoch"] = done_epochs;
      say(opt, "%sepoch %lld/%lld done: mean loss %.4f, %.0f views/s, %s elapsed\n", opt.tty ? "\r\x1b[K" : "",
          static_cast<long long>(done_epochs), static_cast<long long>(tc.epochs), mean_loss, vps,
          fmt_duration(elapsed).c_str());
      epoch_loss = 0;
      epoch_steps = 0;
      if (cfg.eval.knn_every > 0 && done_epochs % cfg.eval.knn_every == 0) {
        if (train_ds->num_classes() > 0)
          run_knn(done_epochs);
        else if (done_epochs == cfg.eval.knn_every)
          say(opt, "note: eval.knn_every is set but '%s' has no labels: no kNN monitor\n", train_ds->describe().c_str());
      }
      const bool ck_due = tc.checkpoint_every > 0 && done_epochs % tc.checkpoint_every == 0;
      if (ck_due || step == total || step == stop_at) {
        save(last_loss);
        saved_now = true;
      }
    } else if (step == stop_at) {
      save(last_loss);
      saved_now = true;
    }
    if (const int sig = StopSignals::pending(); sig != 0 && step < stop_at) {
      if (!saved_now) save(last_loss);
      append_metrics(tc.run_dir, {{"event", "stopped"}, {"signal", signal_name(sig)}, {"step", step}});
      say(opt, "%s%s received: stopped after step %lld of %lld, checkpoint %s; continue with --resume\n",
          opt.tty ? "\r\x1b[K" : "", signal_name(sig), static_cast<long long>(step), static_cast<long long>(total),
          res.last_checkpoint.c_str());
      res.stopped_by_signal = sig;
      break;
    }
  }
  if (tc.profile) profile_enable(false);
  res.end_step = step;
  res.finished = step == total;
  res.seconds = now_s() - t_start;
  res.views_per_second = static_cast<double>(2 * tc.batch * steps_this_call) / std::max(res.seconds, 1e-9);
  if (res.last_checkpoint.empty()) {
    std::vector<std::string> all = list_checkpoints(tc.run_dir);
    if (!all.empty()) res.last_checkpoint = all.back();
  }
  res.summary = prev_metrics;
  if (opt.tty) say(opt, "\n");
  return res;
}

StepTiming measure_step_seconds(const RunConfig& cfg, int steps) {
  set_compute_threads(cfg.train.threads);
  tune_host_allocator();
  std::shared_ptr<Dataset> ds = open_dataset(cfg.data, cfg.data.split);
  Loader loader(ds, cfg.data, train_loader_options(cfg.data, cfg.train.batch, cfg.train.seed));
  SimclrModel model(cfg.model, &cfg.head);
  model.init(cfg.train.seed);
  std::unique_ptr<Optimizer> optim = make_optimizer(cfg.optimizer, model.store);
  double t0 = 0;
  for (int s = 0; s <= steps; s++) {
    if (s == 1) t0 = now_s();
    Batch b = loader.next();
    model.store.zero_grad();
    Tensor loss = ntxent(model.head->forward(model.encoder->forward(b.views, true), true), cfg.temperature);
    backward(loss);
    optim->step(0.0);
  }
  StepTiming t;
  t.seconds_per_step = (now_s() - t0) / std::max(steps, 1);
  t.steps_per_epoch = loader.batches_per_epoch();
  return t;
}

}  // namespace simclr
