// train/trainer.h - the SimCLR training loop.
//
// One step: loader batch (2N views, [view 1; view 2]) -> encoder f (BN in
// training mode) -> projection head g -> NT-Xent(z, tau) -> backward -> the
// optimiser (LARS by default) at the scheduled learning rate.
//
// The run directory (train.run_dir) holds:
//   config.json              the resolved config (every key)
//   metrics.jsonl            one JSON object per line: {"step", "epoch", "loss",
//                            "lr", "views_per_s", "time_s"} every log_interval
//                            steps and at each epoch end ("epoch_loss"), and
//                            evaluation results ({"eval": "knn" | "linear", ...})
//   checkpoint-<step>.ckpt   every checkpoint_every epochs, at max_steps and at
//                            the end; the newest keep_last are kept
//
// Resume (--resume): continues from the newest checkpoint that verifies
// (corrupt or truncated ones are skipped with a warning); the config must
// match the checkpoint's except for the keys of config_mismatch(). On the CPU
// the resumed loss trajectory equals the uninterrupted one exactly: model,
// buffers, optimiser state, step and loader position are restored and every
// batch is a pure function of (seed, epoch, batch index).
// Without --resume a run directory that already holds checkpoints is an error
// (nothing is overwritten).
//
// A non-finite loss stops the run before the update with an error naming the
// step; the checkpoints already written stay as they are.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "train/run_config.h"
#include "models/head.h"
#include "models/resnet.h"
#include "optim/optimizer.h"

namespace simclr {

// Encoder + head in one ParamStore (contiguous parameters and gradients).
struct SimclrModel {
  ParamStore store;
  std::unique_ptr<ResNet> encoder;
  std::unique_ptr<ProjectionHead> head;  // null when built without the head
  SimclrModel(const ResNetConfig& model, const HeadConfig* head_cfg);
  // Deterministic init of every parameter and buffer from seed.
  void init(uint64_t seed);
};

// Describes the model for checkpoints and manifests.
json model_arch_json(const RunConfig& c, const SimclrModel& m);

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, ParamStore& store);

// Two settings that libgomp and OpenBLAS read only when they load, so this
// sets them and re-executes the program (/proc/self/exe, same argv) once.
// Call first thing in main(). SIMCLR_KEEP_ENV=1 turns it off; variables the
// user set are respected.
//  - OMP_WAIT_POLICY=PASSIVE (unless set): idle OpenMP threads sleep instead
//    of spinning. Every op is a parallel region; with spinning threads a
//    2-core machine that runs anything else (the loader's workers, another
//    job) loses most of its time: measured 263 -> 614 views/s for the
//    quickstart step with 2 threads on a busy 2-core machine, the same speed
//    when idle.
//  - OPENBLAS_CORETYPE=SkylakeX when OpenBLAS runs its Haswell/Zen (AVX2)
//    kernels - by its own choice or because OPENBLAS_CORETYPE=Haswell/Zen is
//    set, as OpenBLAS 0.3.21 does not know AMD Zen 4/5 - on a CPU with
//    AVX-512 F/BW/VL/DQ: about 2x faster GEMMs there (the whole test suite
//    passes with them). Any other OPENBLAS_CORETYPE is respected.
// `simclr version` shows the BLAS core in use.
void tune_process_environment(char** argv);
// The earlier name (benchmarks/bench_train_step.cpp calls it).
inline void prefer_avx512_blas(char** argv) { tune_process_environment(argv); }

// Keeps large host buffers in glibc's heap between steps (mallopt: mmap
// threshold 32 MiB, no trimming) instead of mapping and faulting them in
// again every step. Process-wide; train() calls it.
void tune_host_allocator();

// Sets OpenMP and OpenBLAS threads (0: all cores). Returns the count used.
int set_compute_threads(int threads);

// The device training runs on, with a note when it differs from the request
// (device "auto" with a GPU present: the CUDA backend does not cover the whole
// model yet, so training runs on the CPU and the note says so).
Device resolve_device(const std::string& requested, std::string* note);

struct TrainOptions {
  bool resume = false;
  std::FILE* out = stdout;  // progress and log lines (nullptr: silent)
  bool tty = false;         // live progress line (\r) instead of periodic lines
  // test hooks
  int64_t crash_after_steps = -1;  // return abruptly after this many steps of this call (no checkpoint): a kill
  int64_t poison_step = -1;        // the loss of this global step is replaced by NaN
  int64_t signal_after_steps = -1; // raise(signal_to_raise) after this many steps of this call
  int signal_to_raise = 0;
};

struct TrainResult {
  int64_t start_step = 0, end_step = 0, total_steps = 0;
  std::vector<std::pair<int64_t, double>> losses;  // (step, loss) of every step this call ran
  double seconds = 0;                              // wall time of the training loop
  double views_per_second = 0;
  std::string last_checkpoint;
  bool finished = false;                           // reached total_steps
  int stopped_by_signal = 0;                       // SIGINT/SIGTERM/SIGUSR1 that stopped it (0: none)
  json summary;                                    // what the final checkpoint's metrics hold
};

// Graceful stop: while train() runs, SIGINT, SIGTERM and SIGUSR1 (what
// batch schedulers send before a job's time runs out, e.g. SLURM's
// `--signal=USR1@120`) finish the current step, write a checkpoint at that
// step (atomically, like every checkpoint) and return with
// `stopped_by_signal` set; `--resume` then continues exactly. A second SIGINT
// while stopping kills the process at once (the default action). The
// previous handlers are restored when train() returns.
TrainResult train(const RunConfig& cfg, const TrainOptions& opt);

// Wall seconds per training step (loader, forward, NT-Xent, backward, LARS)
// of cfg's model and batch on this machine: `steps` steps after one warm-up
// step, on a throw-away model with real batches (nothing is written).
struct StepTiming {
  double seconds_per_step = 0;
  int64_t steps_per_epoch = 0;
};
StepTiming measure_step_seconds(const RunConfig& cfg, int steps);

// Appends one JSON line to <run_dir>/metrics.jsonl.
void append_metrics(const std::string& run_dir, const json& line);

}  // namespace simclr
