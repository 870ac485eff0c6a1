// train/trainer.cpp - the training loop (see trainer.h).
#include "train/trainer.h"

#include <cblas.h>
#include <malloc.h>
#include <omp.h>

#include <csignal>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "data/holdout.h"
#include "data/loader.h"
#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/fileio.h"
#include "engine/profile.h"
#include "kernels/conv2d.h"
#include "kernels/registry.h"
#include "optim/schedule.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/feed.h"
#include "train/memory.h"

namespace simclr {

namespace fs = std::filesystem;

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

namespace {
// The ops of a SimCLR training step in f32: the device must have every one.
std::string missing_step_ops(DeviceKind kind) {
  std::string missing;
  for (Op op : {Op::conv2d, Op::batch_norm, Op::relu, Op::add_relu, Op::max_pool2d, Op::global_avg_pool,
                Op::linear, Op::l2_normalize, Op::ntxent, Op::sum_product, Op::mean, Op::scale, Op::add})
    if (!supports(kind, op, DType::f32)) missing += std::string(missing.empty() ? "" : ", ") + op_name(op);
  return missing;
}

// The dtype of the step's activations and weight copies for train.precision
// (tf32 is an f32 step with TF32 math, set by apply_precision).
DType step_compute_dtype(const TrainConfig& tc) { return tc.precision == "bf16" ? DType::bf16 : DType::f32; }
}  // namespace

void apply_precision(const TrainConfig& tc, Device device) {
  // bf16 runs on every backend; on the CPU its convolutions are oneDNN's bf16
  // kernels where the CPU has AVX512-BF16 or AMX, else f32 on widened operands
  // (correct, but slower than fp32: the trainer says so, cpu_precision_note).
  SIMCLR_CHECK(!tc.cuda_graph || device.runs_cuda_code() || tc.device == "auto",
               "train.cuda_graph = true needs a CUDA device (train.device = cuda or emu), not ", device.str());
  if (!device.is_cuda()) return;  // tf32 and the convolution choices concern CUDA only
  set_cuda_math(tc.precision == "tf32" ? CudaMath::tf32 : CudaMath::fp32);
  set_cuda_conv_impl(tc.conv_impl == "ours" ? ConvImpl::ours : ConvImpl::cudnn);
  set_cuda_deterministic(tc.deterministic);
}

bool cpu_has_fast_bf16() { return cpu::conv2d_fast_bf16_here(); }

Device resolve_device(const std::string& requested, std::string* note) {
  note->clear();
  if (requested == "cpu") return Device::cpu();
  if (requested == "emu") {
    SIMCLR_CHECK(emulator_built(), "train.device = \"emu\" but this build has no kernel emulator (configured with "
                                   "-DSIMCLR_EMU=OFF or without the CUDA toolkit's headers)");
    const std::string missing = missing_step_ops(DeviceKind::emu);
    SIMCLR_CHECK(missing.empty(), "train.device = \"emu\": the CUDA backend has no kernels yet for: ", missing);
    *note = "train.device = \"emu\": the CUDA backend's own code (tables, launchers, kernels) runs on the CPU "
            "through the kernel emulator. It is a test device (correctness, not speed): slower than the CPU backend";
    return Device::emu();
  }
  const bool gpu = cuda_available();
  const std::string missing = missing_step_ops(DeviceKind::cuda);
  if (requested == "auto") {
    if (!gpu) return Device::cpu();
    if (!missing.empty()) {
      *note = "a GPU is present (" + cuda_device_name(0) + ") but the CUDA backend has no kernels for " + missing +
              ": training runs on the CPU";
      return Device::cpu();
    }
    *note = "training on GPU 0 (" + cuda_device_name(0) + "); train.device = \"cpu\" trains on the CPU";
    return Device::cuda(0);
  }
  Device d = Device::parse(requested);
  SIMCLR_CHECK(gpu, "train.device = \"", requested, "\" but no GPU is usable: ", cuda_unavailable_reason());
  SIMCLR_CHECK(d.index < cuda_device_count(), "train.device = \"", requested, "\" but only ", cuda_device_count(),
               " GPU(s) are present");
  SIMCLR_CHECK(missing.empty(), "train.device = \"", requested, "\": the CUDA backend has no kernels yet for: ",
               missing);
  *note = "training on " + d.str() + " (" + cuda_device_name(d.index) + ")";
  return d;
}

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------- graceful stop
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
    for (int i = 0; i < kN; i++) sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~StopSignals() {
    for (int i = 0; i < kN; i++) sigaction(kSignals[i], &old_[i], nullptr);
    g_stop_signal = 0;
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static int pending() { return g_stop_signal; }

 private:
  static constexpr int kN = 4;  // SIGHUP: a closed terminal or ssh session, as SIGTERM
  static constexpr int kSignals[kN] = {SIGINT, SIGTERM, SIGUSR1, SIGHUP};
  struct sigaction old_[kN];
};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
  }
}

// ---------------------------------------------------------------- one train() call
// The state of one train() call and the steps of its loop, in loop order.
class TrainRun {
 public:
  TrainRun(const RunConfig& cfg, const TrainOptions& opt);

  Batch next_batch();
  StepResult step_once(const Batch& batch);
  [[noreturn]] void stop_non_finite(double loss, int64_t at_step);
  void log_step(double loss, int64_t views);  // a step whose loss is known now
  void step_pending(int64_t views);           // a device step: its loss comes later (train/step.h)
  bool end_of_step();  // epoch summary, kNN, checkpoints; true when it wrote one
  void stop_for_signal(int sig, bool saved_now);
  // After a failed write of the console or metrics.jsonl: a checkpoint of the
  // current step (when none was written at it yet), nothing more written; what
  // to add to the error ("; a checkpoint ... was saved ..." or why not).
  bool write_failed() const { return log_.write_failed(); }
  std::string save_after_write_failure();
  std::string last_checkpoint() const {
    std::vector<std::string> all = list_checkpoints(tc_.run_dir);
    return all.empty() ? "none" : all.back();
  }
  TrainResult killed();
  TrainResult finish();

  int64_t step = 0, stop_at = 0, steps_this_call = 0;

 private:
  void open_run_dir();
  void open_data();
  void build_model();
  void resume_from_checkpoint();
  void print_header(int threads);
  void end_of_epoch();
  void monitor_knn(int64_t done_epochs);
  void run_knn(int64_t epoch);
  void save();
  void record_loss(int64_t s, double loss, double lr, int64_t views);
  void collect_losses(size_t keep);
  void sync_replicas();
  void check_replicas();

 public:
  // Multi-process: the stop signal agreed by every rank (one tiny all-reduce per step):
  // a signal on any rank stops all of them after the same step. One process: the pending one.
  int agreed_stop_signal();

 private:

  const RunConfig& cfg_;
  const TrainConfig& tc_;
  const TrainOptions& opt_;
  // The process group from the launcher's environment (engine/launch_env.h): a
  // LocalCommunicator for one process, MPI for more. Rank 0 alone writes logs,
  // metrics and checkpoints.
  LaunchEnv launch_ = process_launch_env();
  std::unique_ptr<Communicator> comm_ = make_communicator(launch_);
  RunLog log_;
  json resolved_;
  std::unique_ptr<DirLock> lock_;  // the run directory's, for the whole run (rank 0)
  Checkpoint ck_;  // the checkpoint resumed from (when ck_path_ is set)
  std::string ck_path_;
  bool skipped_bad_ = false;  // --resume passed over newer checkpoints that do not verify
  std::shared_ptr<Dataset> train_ds_, test_ds_;
  std::unique_ptr<Loader> loader_;
  int64_t spe_ = 0, total_ = 0, warmup_ = 0;
  double peak_ = 0;
  Schedule sched_;
  Device device_;  // where the model trains (train.device)
  std::unique_ptr<SimclrModel> model_;
  std::unique_ptr<Optimizer> optim_;
  std::unique_ptr<CapturedStep> captured_;  // train.cuda_graph
  std::unique_ptr<DeviceFeeder> feeder_;
  // Device steps whose loss has not reached the host yet, oldest first: the
  // optimiser's guard state (train/step.h) is copied into a page-locked slot
  // after each step, and read once its event is done, or when more than
  // kLossLag - 1 steps are in flight (then the host waits for the oldest).
  static constexpr int kLossLag = 3;
  struct PendingLoss {
    int64_t step;
    double lr;
    int64_t views;
    int slot;
  };
  std::deque<PendingLoss> pending_;
  Tensor guard_host_;  // f32[2 (kLossLag + 1)], pinned
  std::vector<DeviceEvent> guard_ready_;
  int next_slot_ = 0;
  json prev_metrics_ = json::object();  // what the next checkpoint's "metrics" holds
  TrainResult res_;
  // clock and running sums
  double t_start_ = 0, t_last_ = 0, t_now_ = 0, lr_ = 0, last_loss_ = 0, epoch_loss_ = 0;
  int64_t epoch_steps_ = 0, views_since_ = 0;
  int64_t saved_step_ = -1;  // the step of the checkpoint this call wrote last
  double wait_since_ = 0;  // seconds waiting for the loader since the last metrics line
  double wait_total_ = 0;  // ... in this call (the progress line's input wait)
};

TrainRun::TrainRun(const RunConfig& cfg, const TrainOptions& opt)
    : cfg_(cfg), tc_(cfg.train), opt_(opt), log_(cfg.train.run_dir, opt.out, opt.tty, comm_->rank() == 0) {
  check_run_paths(cfg_);
  std::string note;
  device_ = resolve_device(tc_.device, &note);
  if (device_.is_cuda() && comm_->size() > 1 && (tc_.device == "auto" || tc_.device == "cuda")) {
    // one process per GPU: the GPU is the local rank (engine/launch_env.h)
    SIMCLR_CHECK(launch_.local_rank < cuda_device_count(), "rank ", comm_->rank(), " has local rank ",
                 launch_.local_rank, " but this node has ", cuda_device_count(),
                 " GPU(s): start at most one process per GPU per node");
    device_ = Device::cuda(launch_.local_rank);
    note = "rank " + std::to_string(comm_->rank()) + " trains on " + device_.str() + " (its local rank)";
  }
  apply_precision(tc_, device_);
  if (device_.is_cuda() && comm_->size() > 1) {
    // CUDA tensors through NCCL (bootstrapped over MPI, which keeps the CPU tensors);
    // SIMCLR_COMM=mpi keeps MPI for everything (device tensors staged through the host)
    const char* force = std::getenv("SIMCLR_COMM");
    if (force == nullptr || std::string(force) != "mpi")
      comm_ = make_nccl_communicator(std::move(comm_), device_.index);
  }
  if (!note.empty()) log_.say("note: %s\n", note.c_str());
  const int threads = set_compute_threads(tc_.threads);
  if (device_.is_cpu() && tc_.precision == "bf16" && !cpu_has_fast_bf16())
    log_.say("note: train.precision = \"bf16\" on a CPU without oneDNN bf16 convolution kernels (they need "
             "AVX512-BF16 or AMX): the convolutions run in f32 on widened operands, slower than fp32\n");
  tune_host_allocator();
  resolved_ = run_config_to_json(cfg_);
  // Host memory (the CPU, the emulated device): refuse what cannot fit before
  // anything is allocated or written: the run directory, the data, the
  // loader's workers (train/memory.h).
  if (!device_.is_cuda()) {
    const std::string n = check_train_memory(cfg_, std::max<int64_t>(1, tc_.batch / comm_->size()));
    if (!n.empty()) log_.say("note: %s\n", n.c_str());
  }
  open_run_dir();
  open_data();
  build_model();
  if (!ck_path_.empty())
    resume_from_checkpoint();
  else
    log_.start_metrics_fresh();
  sync_replicas();
  res_.start_step = res_.end_step = step;
  res_.total_steps = total_;
  stop_at = tc_.max_steps > 0 ? std::min(total_, tc_.max_steps) : total_;
  print_header(threads);
  if (tc_.profile) {
    profile_reset();
    profile_enable(true);
  }
  t_start_ = t_last_ = now_s();
  last_loss_ = prev_metrics_.value("loss", 0.0);
}

// Creates the run directory, finds the checkpoint to resume from (or refuses
// to overwrite one), checks its config and writes config.json.
void TrainRun::open_run_dir() {
  std::error_code ec;
  fs::create_directories(tc_.run_dir, ec);
  SIMCLR_CHECK(fs::is_directory(tc_.run_dir), "cannot create the run directory '", tc_.run_dir, "': ", ec.message());
  if (comm_->rank() == 0) {  // one run per directory; what a killed write left goes
    lock_ = std::make_unique<DirLock>(tc_.run_dir, "the run directory");
    if (!lock_->note().empty()) log_.say("note: %s\n", lock_->note().c_str());
    for (const std::string& t : remove_stale_temporaries(tc_.run_dir))
      log_.say("note: removed '%s' (a temporary file an interrupted write left)\n", t.c_str());
  }
  if (opt_.resume) {
    if (comm_->rank() == 0) {  // rank 0 chooses (it sets bad files aside); the others then find the same one
      ResumeChoice rc = choose_resume_checkpoint(tc_.run_dir, &ck_);  // throws when only bad ones exist
      ck_path_ = rc.path;
      skipped_bad_ = !rc.skipped.empty();
      for (const SkippedCheckpoint& s : rc.skipped)
        log_.say("warning: --resume is skipping a bad checkpoint: %s\n", describe_set_aside(s).c_str());
    }
    if (comm_->size() > 1) {
      comm_->barrier();
      if (comm_->rank() != 0) {
        std::vector<std::string> skipped;
        ck_path_ = latest_good_checkpoint(tc_.run_dir, &skipped, &ck_);
      }
    }
    if (ck_path_.empty())
      log_.say("note: --resume: no checkpoint in '%s' yet, starting from the beginning\n", tc_.run_dir.c_str());
  } else {
    std::vector<std::string> existing = list_checkpoints(tc_.run_dir);
    SIMCLR_CHECK(existing.empty(), "the run directory '", tc_.run_dir, "' already holds checkpoints (latest: ",
                 existing.empty() ? "" : existing.back(),
                 "): pass --resume to continue that run, or choose another train.run_dir");
  }
  if (!ck_path_.empty()) {
    std::string diff = config_mismatch(ck_.meta.value("config", json::object()), resolved_);
    SIMCLR_CHECK(diff.empty(), "cannot resume from '", ck_path_, "': the config differs at ", diff,
                 ". Resume with the checkpoint's value (--set key=value, or the same config), or start a new run in "
                 "another train.run_dir (docs/config.md lists the keys that may change on resume)");
  }
  if (comm_->rank() == 0) write_file_atomic((fs::path(tc_.run_dir) / "config.json").string(), resolved_.dump(2) + "\n");
}

void TrainRun::open_data() {
  train_ds_ = open_run_split(cfg_.data, "pretrain", cfg_.eval.holdout, cfg_.eval.holdout_seed);
  LoaderOptions lo = train_loader_options(cfg_.data, tc_.batch, tc_.seed);
  lo.pinned = device_.is_cuda();  // batches copied to the GPU asynchronously (train/feed.h)
  lo.gpu_augment = augment_on_device(cfg_.data, device_);  // data.augment_on: views made on the device (feed.h)
  lo.shard_rank = comm_->rank();  // train.batch is the global batch: this rank builds its share
  lo.shard_count = comm_->size();
  loader_ = std::make_unique<Loader>(train_ds_, cfg_.data, lo);
  spe_ = loader_->batches_per_epoch();
  total_ = spe_ * tc_.epochs;
  warmup_ = warmup_steps_from_epochs(cfg_.warmup_epochs, spe_, total_);
  peak_ = scaled_base_lr(cfg_.optimizer.lr, cfg_.optimizer.lr_scaling, tc_.batch);
  sched_ = Schedule(peak_, warmup_, total_);
  // Every input the run will need is opened before the first step: a broken
  // test split used to surface at the first kNN monitor, or (linear_at_end)
  // only after all pretraining.
  const int64_t stop = tc_.max_steps > 0 ? std::min(total_, tc_.max_steps) : total_;
  const bool final_eval = cfg_.eval.linear_at_end || cfg_.eval.random_init || cfg_.eval.raw_pixels;
  if (final_eval && stop < total_)
    log_.say("note: train.max_steps = %lld stops before the last step (%lld): no final linear evaluation "
             "(eval.linear_at_end) in this call; --resume without train.max_steps finishes the run and evaluates\n",
             static_cast<long long>(tc_.max_steps), static_cast<long long>(total_));
  // The final probe needs labels: found now, not after all pretraining.
  SIMCLR_CHECK(!(final_eval && stop == total_ && train_ds_->num_classes() == 0), "eval.linear_at_end (or "
               "eval.random_init / eval.raw_pixels) needs a labelled train split, but ", train_ds_->describe(),
               " has no labels: give data.labels, or --set eval.linear_at_end=false");
  const bool knn = cfg_.eval.knn_every > 0 && cfg_.eval.knn_every <= tc_.epochs;
  if ((knn || (final_eval && stop == total_)) && train_ds_->num_classes() > 0) {
    SIMCLR_CHECK(train_ds_->num_classes() >= 2, "the kNN monitor and the linear probe need at least 2 classes, but ",
                 train_ds_->describe(), " has labels of one class only (accuracy would be 100% by construction): "
                 "check data.labels, or --set eval.knn_every=0 --set eval.linear_at_end=false");
    // the split the probes score on: the test split, or held-out training images (eval.holdout)
    test_ds_ = open_run_split(cfg_.data, "score", cfg_.eval.holdout, cfg_.eval.holdout_seed);
  }
  if (cfg_.data.subset > 0 && cfg_.data.subset > train_ds_->size())
    log_.say("note: data.subset = %lld is larger than the dataset: all %lld images are used\n",
             static_cast<long long>(cfg_.data.subset), static_cast<long long>(train_ds_->size()));
}

void TrainRun::build_model() {
  model_ = std::make_unique<SimclrModel>(cfg_.model, &cfg_.head);
  model_->init(tc_.seed);
  model_->to(device_);
  model_->compute_dtype = step_compute_dtype(tc_);
  model_->grad_bucket_bytes = static_cast<size_t>(tc_.grad_bucket_mb * (1 << 20));  // apply_precision checked the device
  optim_ = make_optimizer(cfg_.optimizer, model_->store);
  if (device_.runs_cuda_code()) {
    feeder_ = std::make_unique<DeviceFeeder>(device_);
    guard_host_ = pinned_empty({2 * (kLossLag + 1)}, DType::f32);
    for (int i = 0; i <= kLossLag; i++) guard_ready_.emplace_back(device_);
    if (tc_.cuda_graph) {
      SIMCLR_CHECK(cfg_.optimizer.name == "lars", "train.cuda_graph = true needs optimizer.name = \"lars\" (the "
                   "optimiser with a device-side update and loss guard), not \"", cfg_.optimizer.name, "\"");
      captured_ = std::make_unique<CapturedStep>(*model_, *optim_, cfg_.temperature, comm_.get());
    }
  } else if (tc_.cuda_graph) {
    log_.say("note: train.cuda_graph is ignored on the CPU\n");
  }
}

// Model, buffers, optimiser state, step and loader position from ck_.
void TrainRun::resume_from_checkpoint() {
  load_model_tensors(ck_, model_->store);
  for (auto& [name, t] : optim_->state()) {
    const CheckpointTensor* c = ck_.find(name, "optimizer");
    SIMCLR_CHECK(c != nullptr && c->tensor.shape() == t.shape() && c->tensor.dtype() == t.dtype(), "checkpoint '",
                 ck_path_, "': optimiser state '", name, "' is missing or has another shape");
    t.copy_from(c->tensor);
  }
  const CheckpointRunState st = checkpoint_run_state(ck_, ck_path_);
  step = st.step;
  SIMCLR_CHECK(st.steps_per_epoch == spe_ && st.total_steps == total_, "cannot resume from '", ck_path_, "': it has ",
               st.steps_per_epoch, " steps per epoch and ", st.total_steps, " in all, this run ", spe_, " and ", total_);
  epoch_loss_ = st.epoch_loss_sum;  // a mid-epoch checkpoint: the epoch's mean covers its earlier steps too
  epoch_steps_ = st.epoch_loss_steps;
  prev_metrics_ = ck_.meta.value("metrics", json::object());
  loader_->seek({step / spe_, step % spe_});
  // Past bad checkpoints, the lines cut are progress the run lost: keep a copy.
  const std::string keep =
      skipped_bad_ ? (fs::path(tc_.run_dir) / "metrics.jsonl").string() + ".before-resume-at-" + std::to_string(step) : "";
  if (log_.start_metrics_resumed(step, keep) > 0 && !keep.empty())
    log_.say("note: metrics.jsonl is cut back to step %lld; the lines before the resume are kept in %s\n",
             static_cast<long long>(step), keep.c_str());
  log_.say("resuming from %s (step %lld, epoch %lld)\n", ck_path_.c_str(), static_cast<long long>(step),
           static_cast<long long>(step / spe_));
}

void TrainRun::print_header(int threads) {
  size_t nparams = 0;
  for (const Param& p : model_->store.params())
    if (p.trainable() && !(p.flags & kIsHead)) nparams += static_cast<size_t>(p.shape.numel());
  log_.say("simclr train: %s width %g (%s stem), %.2fM encoder params, %s; %lld images, batch %lld (%lld views), "
           "%lld steps/epoch x %lld epochs, %s peak lr %g, warm-up %lld steps, tau %g; %s, %d CPU threads; run dir %s\n",
           model_->encoder->arch_name().c_str(), cfg_.model.width, cfg_.model.stem.c_str(), nparams / 1e6,
           train_ds_->describe().c_str(), static_cast<long long>(train_ds_->size()), static_cast<long long>(tc_.batch),
           static_cast<long long>(2 * tc_.batch), static_cast<long long>(spe_), static_cast<long long>(tc_.epochs),
           cfg_.optimizer.name.c_str(), peak_, static_cast<long long>(warmup_), cfg_.temperature,
           device_.is_cpu() ? "CPU" : device_.str().c_str(), threads, tc_.run_dir.c_str());
}

Batch TrainRun::next_batch() {
  Batch batch;
  {
    OpTimer t("data (wait)");
    const double t0 = now_s();
    batch = loader_->next();
    wait_since_ += now_s() - t0;  // the metrics lines' wait_frac
    wait_total_ += now_s() - t0;
  }
  SIMCLR_ASSERT(batch.epoch == step / spe_ && batch.index == step % spe_);
  return batch;
}

StepResult TrainRun::step_once(const Batch& batch) {
  lr_ = sched_.lr(step);
  LossFilter filter;
  if (opt_.callbacks.loss_filter) filter = [this](double loss) { return opt_.callbacks.loss_filter(step, loss); };
  try {
    if (!device_.runs_cuda_code()) return train_step(batch.views, *model_, *optim_, lr_, cfg_.temperature, comm_.get(), filter);
    const Tensor views = batch.views.defined()
                             ? feeder_->put(batch.views)
                             : feeder_->put_augmented(batch.sources, batch.view_params, batch.augment, DType::f32);
    StepResult r;
    if (captured_) {
      SIMCLR_CHECK(!filter, "train: the loss_filter test seam does not work with train.cuda_graph");
      r = captured_->run(views, lr_);
    } else {
      r = train_step(views, *model_, *optim_, lr_, cfg_.temperature, comm_.get(), filter);
    }
    feeder_->issued();
    return r;
  } catch (const Error& e) {
    // A device out of memory: name the batch to try (the engine's message names the allocation).
    if (!device_.is_cuda() || std::string(e.what()).find("out of GPU memory") == std::string::npos) throw;
    fail(e.what(), "; this run has train.batch = ", tc_.batch, " (", 2 * tc_.batch, " views per step): try --set train.batch=",
         std::max<int64_t>(2, tc_.batch / 2));
  }
}

void TrainRun::stop_non_finite(double loss, int64_t at_step) {
  const int64_t epoch = at_step / spe_;
  std::string last = list_checkpoints(tc_.run_dir).empty() ? "none" : list_checkpoints(tc_.run_dir).back();
  log_.metrics({{"event", "non-finite loss"}, {"step", at_step}, {"epoch", epoch}});
  fail("the loss is not finite (", loss, ") at step ", at_step, " (epoch ", epoch, ", batch ", at_step % spe_,
       "): training stopped before the update. The last good checkpoint is ", last,
       " (lower optimizer.lr or check the data, then --resume)");
}

// Counts the step that just updated and records its loss.
void TrainRun::log_step(double loss, int64_t views) {
  step++;
  steps_this_call++;
  record_loss(step - 1, loss, lr_, views);
}

// Counts a device step whose loss is still on the device: its guard state goes
// to a page-locked slot (no host wait), and the losses that have arrived are recorded.
void TrainRun::step_pending(int64_t views) {
  step++;
  steps_this_call++;
  const int slot = next_slot_;
  next_slot_ = (next_slot_ + 1) % (kLossLag + 1);
  const Tensor g = optim_->guard_state();
  copy_bytes_async(static_cast<float*>(guard_host_.data_ptr()) + 2 * slot, Device::cpu(), g.data_ptr(), g.device(),
                   2 * sizeof(float));
  guard_ready_[static_cast<size_t>(slot)].record();
  pending_.push_back({step - 1, lr_, views, slot});
  collect_losses(kLossLag - 1);  // at most kLossLag - 1 steps in flight after this (slots: kLossLag + 1)
}

// Records the pending losses oldest first: waits for them while more than
// `keep` are pending, then (one process) also takes those already done. With
// several processes only the waits count, so every rank reads its (identical,
// all-reduced) losses at the same loop iteration and a non-finite one stops
// all of them at the same point. A halted guard means that step's loss was not
// finite and no update was applied since (train/step.h): the run stops there.
void TrainRun::collect_losses(size_t keep) {
  while (!pending_.empty()) {
    const PendingLoss p = pending_.front();
    const DeviceEvent& ev = guard_ready_[static_cast<size_t>(p.slot)];
    if (pending_.size() > keep)
      ev.wait_host();
    else if (comm_->size() > 1 || !ev.done())
      return;
    pending_.pop_front();
    const float* g = static_cast<const float*>(guard_host_.data_ptr()) + 2 * p.slot;
    if (g[1] != 0.0f) {
      pending_.clear();
      stop_non_finite(g[0], p.step);
    }
    record_loss(p.step, g[0], p.lr, p.views);
  }
}

// Step s's loss: the running sums, its metrics line when due and the progress line.
void TrainRun::record_loss(int64_t s, double loss, double lr, int64_t views) {
  const int64_t done = s + 1;  // steps done once this one is
  const int64_t epoch = s / spe_;  // the epoch the step belonged to
  const int64_t counted = std::max<int64_t>(done - res_.start_step, 1);  // this call's steps so far
  res_.losses.emplace_back(s, loss);
  last_loss_ = loss;
  epoch_loss_ += loss;
  epoch_steps_++;
  views_since_ += views;

  t_now_ = now_s();
  const double elapsed = t_now_ - t_start_;
  const double vps = static_cast<double>(2 * tc_.batch * counted) / std::max(elapsed, 1e-9);
  const double eta = static_cast<double>(stop_at - done) * elapsed / static_cast<double>(counted);
  const bool due = done % tc_.log_interval == 0 || done == stop_at;
  if (due) {
    const double vps_recent = static_cast<double>(views_since_) / std::max(t_now_ - t_last_, 1e-9);
    log_.metrics({{"step", done},
                  {"epoch", static_cast<double>(done) / static_cast<double>(spe_)},
                  {"loss", loss},
                  {"lr", lr},
                  {"views_per_s", vps_recent},
                  {"wait_frac", std::min(1.0, wait_since_ / std::max(t_now_ - t_last_, 1e-9))},
                  {"time_s", elapsed}});
    t_last_ = t_now_;
    views_since_ = 0;
    wait_since_ = 0;
  }
  log_.progress({epoch + 1, tc_.epochs, done, total_, loss, lr, vps, eta, std::min(1.0, wait_total_ /
                 std::max(elapsed, 1e-9))}, due);
}

bool TrainRun::end_of_step() {
  if (step % spe_ == 0 || step == stop_at) collect_losses(0);  // the epoch's losses, before its summary
  if (step % spe_ != 0) {
    if (step != stop_at) return false;
    save();
    return true;
  }
  end_of_epoch();
  const int64_t done_epochs = step / spe_;
  const bool ck_due = tc_.checkpoint_every > 0 && done_epochs % tc_.checkpoint_every == 0;
  const bool saved = ck_due || step == total_ || step == stop_at;
  // The checkpoint first, then the kNN monitor: a kNN that fails (a broken
  // test split, no memory for the features) loses nothing of the epoch.
  if (saved) save();
  monitor_knn(done_epochs);
  return saved;
}

// The epoch's mean loss (metrics line, console).
void TrainRun::end_of_epoch() {
  const int64_t done_epochs = step / spe_;
  const double elapsed = t_now_ - t_start_;
  const double vps = static_cast<double>(2 * tc_.batch * steps_this_call) / std::max(elapsed, 1e-9);
  const double mean_loss = epoch_loss_ / static_cast<double>(std::max<int64_t>(epoch_steps_, 1));
  log_.metrics({{"step", step}, {"epoch", done_epochs}, {"epoch_loss", mean_loss}, {"time_s", elapsed}});
  prev_metrics_["epoch_loss"] = mean_loss;
  prev_metrics_["epoch"] = done_epochs;
  log_.report("epoch %lld/%lld done: mean loss %.4f, %.0f views/s, %s elapsed\n", static_cast<long long>(done_epochs),
              static_cast<long long>(tc_.epochs), mean_loss, vps, fmt_duration(elapsed).c_str());
  epoch_loss_ = 0;
  epoch_steps_ = 0;
}

// The kNN monitor when due (after the epoch's checkpoint).
void TrainRun::monitor_knn(int64_t done_epochs) {
  if (cfg_.eval.knn_every > 0 && done_epochs % cfg_.eval.knn_every == 0) {
    if (train_ds_->num_classes() > 0) {
      if (comm_->rank() == 0) run_knn(done_epochs);
      // the others wait for rank 0's evaluation here, as long as it takes
      CommTimeout no_limit(comm_.get(), 0);
      comm_->barrier();
    } else if (done_epochs == cfg_.eval.knn_every)
      log_.say("note: eval.knn_every is set but '%s' has no labels: no kNN monitor\n", train_ds_->describe().c_str());
  }
}

void TrainRun::run_knn(int64_t epoch) {
  if (!test_ds_) test_ds_ = open_run_split(cfg_.data, "score", cfg_.eval.holdout, cfg_.eval.holdout_seed);
  double t0 = now_s();
  FeatureSet ftr = encoder_features(*model_->encoder, train_ds_, cfg_.data, cfg_.eval.batch);
  FeatureSet fte = encoder_features(*model_->encoder, test_ds_, cfg_.data, cfg_.eval.batch);
  KnnResult r = knn_eval(ftr, fte, cfg_.eval.knn_k, cfg_.eval.knn_temperature);
  if (r.k < cfg_.eval.knn_k && epoch == cfg_.eval.knn_every)
    log_.say("note: eval.knn_k = %d but the kNN bank (the train split) has %lld images: k = %d is used\n",
             cfg_.eval.knn_k, static_cast<long long>(ftr.n()), r.k);
  json knn_line = {{"eval", "knn"}, {"step", step}, {"epoch", epoch}, {"top1", r.top1}, {"top5", r.top5},
                   {"k", r.k}, {"temperature", cfg_.eval.knn_temperature}, {"seconds", now_s() - t0}};
  if (cfg_.eval.holdout > 0) knn_line["split"] = "holdout";  // scored on held-out training images
  log_.metrics(knn_line);
  prev_metrics_["knn_top1"] = r.top1;
  log_.report("epoch %lld: kNN (k=%d, T=%g) %stop-1 %.2f%%, top-5 %.2f%% (%.1f s)\n", static_cast<long long>(epoch),
              r.k, cfg_.eval.knn_temperature, cfg_.eval.holdout > 0 ? "held-out " : "", 100 * r.top1, 100 * r.top5,
              now_s() - t0);
}

// A checkpoint at the current step (atomically), then the oldest beyond keep_last go.
void TrainRun::save() {
  check_replicas();
  prev_metrics_["loss"] = last_loss_;
  if (comm_->rank() != 0) {  // rank 0 writes; every rank knows what it wrote
    res_.last_checkpoint = checkpoint_path(tc_.run_dir, step);
    res_.summary = prev_metrics_;
    return;
  }
  Checkpoint c;
  c.meta["format"] = "simclr-checkpoint";
  c.meta["engine"] = {{"version", SIMCLR_VERSION}, {"commit", SIMCLR_GIT_COMMIT}};
  c.meta["arch"] = model_arch_json(cfg_, *model_);
  c.meta["config"] = resolved_;
  c.meta["state"] = {{"step", step},
                     {"epoch", step / spe_},
                     {"batch_in_epoch", step % spe_},
                     {"steps_per_epoch", spe_},
                     {"total_steps", total_},
                     {"seed", tc_.seed},
                     {"loader", {{"epoch", step / spe_}, {"batch", step % spe_}}},
                     {"optimizer", optim_->name()},
                     {"lr_next", sched_.lr(step)},
                     {"world_size", comm_->size()},
                     {"epoch_loss_sum", epoch_loss_},
                     {"epoch_loss_steps", epoch_steps_}};
  c.meta["metrics"] = prev_metrics_;
  add_model_tensors(c, model_->store);
  for (auto& [name, t] : optim_->state()) c.tensors.push_back({name, "optimizer", 0, t.clone()});
  std::string path = checkpoint_path(tc_.run_dir, step);
  save_checkpoint(path, c);
  saved_step_ = step;
  res_.last_checkpoint = path;
  for (const std::string& n : prune_checkpoints(tc_.run_dir, tc_.keep_last, path)) log_.say("%s\n", n.c_str());
  res_.summary = prev_metrics_;
}

// Multi-process: every rank starts from rank 0's parameters, buffers and optimiser
// state (the same by construction: the seeded init, or the one checkpoint), and
// all resume at the same step.
void TrainRun::sync_replicas() {
  if (!ck_path_.empty()) {
    const int64_t was = ck_.meta["state"].value("world_size", static_cast<int64_t>(1));
    if (was != comm_->size())
      log_.say("note: the checkpoint was written by %lld process(es), this run has %d; the global batch is the "
               "same, so training continues as it would have\n", static_cast<long long>(was), comm_->size());
  }
  if (comm_->size() <= 1) return;
  comm_->broadcast(model_->store.values(), 0);
  comm_->broadcast(model_->store.buffers(), 0);
  for (auto& [name, t] : optim_->state()) comm_->broadcast(t, 0);
  Tensor s = Tensor::full({1}, static_cast<double>(step), DType::i64);
  comm_->broadcast(s, 0);
  SIMCLR_CHECK(static_cast<int64_t>(s.at(0)) == step, "rank ", comm_->rank(), " would resume at step ", step,
               " but rank 0 at step ", static_cast<int64_t>(s.at(0)),
               ": the ranks see different checkpoints (train.run_dir must be one shared directory)");
  // test hook (tests/mpi/train_equiv_check.py): this rank's first parameter one ulp off,
  // which check_replicas() must find and repair at the first checkpoint
  if (const char* p = std::getenv("SIMCLR_TEST_PERTURB_RANK"); p != nullptr && std::atoi(p) == comm_->rank()) {
    Tensor first = model_->store.values().slice0(0, 1).to(Device::cpu());
    first.data<float>()[0] = std::nextafter(first.data<float>()[0], INFINITY);
    model_->store.values().slice0(0, 1).copy_from(first);
  }
  log_.say("note: %d processes (%s, %s): train.batch %lld is the global batch, %lld images per rank\n", comm_->size(),
           launch_.launcher.c_str(), comm_->backend().c_str(), static_cast<long long>(tc_.batch),
           static_cast<long long>(tc_.batch / comm_->size()));
}

// Multi-process, at each checkpoint: the ranks' parameters must be the same bits
// (every rank applies the same all-reduced gradient; an MPI whose sums differed by
// rank in the last bit would let the replicas drift). A checksum per rank, gathered;
// on a mismatch rank 0's parameters, buffers and optimiser state are broadcast again.
void TrainRun::check_replicas() {
  if (comm_->size() <= 1) return;
  const Tensor v = model_->store.values().to(Device::cpu());
  const uint64_t* w = static_cast<const uint64_t*>(v.data_ptr());
  uint64_t h = 1469598103934665603ull;  // FNV-1a over 64-bit words
  for (size_t i = 0; i < v.nbytes() / 8; i++) h = (h ^ w[i]) * 1099511628211ull;
  if (v.nbytes() % 8 != 0) {  // an odd count of f32: the last one
    uint32_t last = 0;
    std::memcpy(&last, static_cast<const char*>(v.data_ptr()) + v.nbytes() - 4, 4);
    h = (h ^ last) * 1099511628211ull;
  }
  Tensor mine = Tensor::full({1}, 0.0, DType::i64), all = Tensor::empty({comm_->size()}, DType::i64);
  std::memcpy(mine.data_ptr(), &h, 8);
  comm_->all_gather(all, mine);
  std::vector<int> differ;
  for (int r = 1; r < comm_->size(); r++)
    if (std::memcmp(all.data<int64_t>() + r, all.data<int64_t>(), 8) != 0) differ.push_back(r);
  if (differ.empty()) return;
  log_.say("warning: step %lld: the parameters of %zu rank(s) differ from rank 0's (first: rank %d): "
           "broadcasting rank 0's again\n", static_cast<long long>(step), differ.size(), differ[0]);
  comm_->broadcast(model_->store.values(), 0);
  comm_->broadcast(model_->store.buffers(), 0);
  for (auto& [name, t] : optim_->state()) comm_->broadcast(t, 0);
}

int TrainRun::agreed_stop_signal() {
  const int sig = StopSignals::pending();
  if (comm_->size() <= 1) return sig;
  static constexpr int kStop[3] = {SIGINT, SIGTERM, SIGUSR1};
  Tensor f = Tensor::zeros({3}, DType::i32);
  for (int i = 0; i < 3; i++)
    if (sig == kStop[i]) f.data<int32_t>()[i] = 1;
  comm_->all_reduce_sum(f);
  for (int i = 0; i < 3; i++)
    if (f.data<int32_t>()[i] > 0) return kStop[i];
  return 0;
}

void TrainRun::stop_for_signal(int sig, bool saved_now) {
  collect_losses(0);  // (a non-finite one stops here, before the checkpoint)
  if (!saved_now) save();
  comm_->barrier();  // no rank leaves (and lets the launcher end the job) before rank 0 has written it
  log_.metrics({{"event", "stopped"}, {"signal", signal_name(sig)}, {"step", step}});
  log_.report("%s received: stopped after step %lld of %lld, checkpoint %s; continue with --resume\n",
              signal_name(sig), static_cast<long long>(step), static_cast<long long>(total_),
              res_.last_checkpoint.c_str());
  res_.stopped_by_signal = sig;
}

std::string TrainRun::save_after_write_failure() {
  log_.silence();
  try {
    collect_losses(0);  // the device steps' losses, into the epoch's sums (nothing is written now)
  } catch (const Error&) {
    // a non-finite pending loss: the parameters before that update are gone; keep the last checkpoint
    return "; the last checkpoint is " + (res_.last_checkpoint.empty() ? std::string("none") : res_.last_checkpoint);
  }
  if (saved_step_ == step)
    return "; the run stopped at step " + std::to_string(step) + ", whose checkpoint " + res_.last_checkpoint +
           " was written: free some space, then continue with --resume";
  if (step % spe_ == 0) {  // at an epoch's end the sums belong to the epoch just summarised
    epoch_loss_ = 0;
    epoch_steps_ = 0;
  }
  try {
    save();
  } catch (const std::exception& e) {
    std::vector<std::string> all = list_checkpoints(tc_.run_dir);
    return std::string("; saving a checkpoint of step ") + std::to_string(step) + " failed too (" + e.what() +
           "); the last checkpoint is " + (all.empty() ? std::string("none") : all.back());
  }
  return "; the run stopped at step " + std::to_string(step) + ": a checkpoint of it was saved (" +
         res_.last_checkpoint + "); free some space, then continue with --resume";
}

// As a kill leaves the run: no checkpoint, no summary.
TrainResult TrainRun::killed() {
  clear_tape();
  res_.end_step = step;
  res_.seconds = now_s() - t_start_;
  return res_;
}

TrainResult TrainRun::finish() {
  collect_losses(0);
  if (tc_.profile) profile_enable(false);
  res_.end_step = step;
  res_.finished = step == total_;
  res_.seconds = now_s() - t_start_;
  res_.views_per_second = static_cast<double>(2 * tc_.batch * steps_this_call) / std::max(res_.seconds, 1e-9);
  if (res_.last_checkpoint.empty()) {
    std::vector<std::string> all = list_checkpoints(tc_.run_dir);
    if (!all.empty()) res_.last_checkpoint = all.back();
  }
  res_.summary = prev_metrics_;
  res_.rank = comm_->rank();
  res_.world_size = comm_->size();
  log_.finish();
  return res_;
}

TrainResult train_loop(TrainRun& run, const TrainOptions& opt) {
  const TrainCallbacks& cb = opt.callbacks;
  while (run.step < run.stop_at) {
    if (cb.kill_before_step && cb.kill_before_step(run.step, run.steps_this_call)) return run.killed();
    const Batch batch = run.next_batch();
    const StepResult r = run.step_once(batch);
    if (r.pending) {
      run.step_pending(2 * batch.size());
    } else {
      if (!r.updated) run.stop_non_finite(r.loss, run.step);
      run.log_step(r.loss, 2 * batch.size());
    }
    if (cb.after_step) cb.after_step(run.step, run.steps_this_call);
    const bool saved = run.end_of_step();  // an epoch end: mean loss, kNN, checkpoint; a checkpoint at the last step
    if (const int sig = run.agreed_stop_signal(); sig != 0 && run.step < run.stop_at) {
      run.stop_for_signal(sig, saved);
      break;
    }
  }
  return run.finish();
}

}  // namespace

TrainResult train(const RunConfig& cfg, const TrainOptions& opt) {
  StopSignals stop_signals;  // SIGINT/SIGTERM/SIGUSR1 from here on: finish the step, checkpoint, return
  std::unique_ptr<TrainRun> made;
  try {
    made = std::make_unique<TrainRun>(cfg, opt);  // run directory, resume, data, model and optimiser; the header
  } catch (const std::bad_alloc&) {
    fail("out of memory while setting up the run (the dataset, the model and optimiser state, or the memory "
         "estimate's tiny steps): lower data.image_size, model.width, head.hidden / head.out or train.batch");
  }
  TrainRun& run = *made;
  try {
    return train_loop(run, opt);
  } catch (const std::bad_alloc&) {
    fail("out of memory during step ", run.step + 1, " of ", run.stop_at,
         " (an allocation of the step, its data or an evaluation failed): lower train.batch, data.image_size, "
         "model.width or eval.batch; the last checkpoint is ", run.last_checkpoint());
  } catch (const Error& e) {
    if (!run.write_failed()) throw;
    fail(e.what(), run.save_after_write_failure());  // a full disk: keep what can be kept, then a clear error
  }
}


StepTiming measure_step_seconds(const RunConfig& cfg, int steps) {
  set_compute_threads(cfg.train.threads);
  tune_host_allocator();
  check_train_memory(cfg, cfg.train.batch);  // before the calibration's full-size steps (train/memory.h)
  std::shared_ptr<Dataset> ds = open_run_split(cfg.data, "pretrain", cfg.eval.holdout, cfg.eval.holdout_seed);
  Loader loader(ds, cfg.data, train_loader_options(cfg.data, cfg.train.batch, cfg.train.seed));
  SimclrModel model(cfg.model, &cfg.head);
  model.init(cfg.train.seed);
  model.compute_dtype = step_compute_dtype(cfg.train);  // the step the run will take
  std::unique_ptr<Optimizer> optim = make_optimizer(cfg.optimizer, model.store);
  double t0 = 0;
  for (int s = 0; s <= steps; s++) {
    if (s == 1) t0 = now_s();
    train_step(loader.next().views, model, *optim, 0.0, cfg.temperature);
  }
  StepTiming t;
  t.seconds_per_step = (now_s() - t0) / std::max(steps, 1);
  t.steps_per_epoch = loader.batches_per_epoch();
  t.compute_dtype = model.compute_dtype;
  return t;
}

}  // namespace simclr
