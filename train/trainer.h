// train/trainer.h - the SimCLR training loop.
//
// Each step: the loader's next batch (2N views, [view 1; view 2]) ->
// train_step (train/step.h: encoder, head, NT-Xent, backward, the optimiser
// at the scheduled learning rate) -> progress and metrics (train/run_log.h)
// -> at an epoch end the epoch summary, the kNN monitor and a checkpoint.
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
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "train/model.h"
#include "train/run_config.h"
#include "train/run_log.h"
#include "train/step.h"

namespace simclr {

// Keeps large host buffers in glibc's heap between steps (mallopt: mmap
// threshold 32 MiB, no trimming) instead of mapping and faulting them in
// again every step. Process-wide; train() calls it.
void tune_host_allocator();

// Sets OpenMP and OpenBLAS threads (0: all cores). Returns the count used.
int set_compute_threads(int threads);

// The device training runs on (train.device), with a note saying which and
// why: "auto" takes GPU 0 when one is usable and the CUDA backend has every op
// of the step, else the CPU; "cuda[:k]" without a usable GPU, or "emu" in a
// build without the emulator, is an error naming the reason.
Device resolve_device(const std::string& requested, std::string* note);
// train.precision / conv_impl / deterministic for the CUDA backend (engine/device.h);
// bf16 (the bf16 step, SimclrModel::compute_dtype) runs on every device.
void apply_precision(const TrainConfig& tc, Device device);
// True when this CPU has oneDNN's bf16 convolution kernels (AVX512-BF16 or
// AMX), where train.precision bf16 is faster than fp32 on the CPU.
bool cpu_has_fast_bf16();

// Test seams of train(), called at fixed points of the loop; empty ones cost nothing.
//   step: the global step (steps done since the start of the run);
//   steps_this_call: steps this train() call has run.
struct TrainCallbacks {
  // Before each step: returning true makes train() return at once, as a kill
  // would leave the run (no checkpoint, no summary, the result not finished).
  std::function<bool(int64_t step, int64_t steps_this_call)> kill_before_step;
  // Replaces the loss of global step `step` (the step's index, from 0) before
  // the finite check: NaN there tests the non-finite stop.
  std::function<double(int64_t step, double loss)> loss_filter;
  // After each step's update and progress line, before the end-of-epoch work
  // and the stop-signal check (`step` already counts the step: e.g. raise a
  // signal there and the run stops after this step).
  std::function<void(int64_t step, int64_t steps_this_call)> after_step;
};

struct TrainOptions {
  bool resume = false;
  std::FILE* out = stdout;  // progress and log lines (nullptr: silent)
  bool tty = false;         // live progress line (\r) instead of periodic lines
  TrainCallbacks callbacks; // test seams
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
  int rank = 0, world_size = 1;                    // this process in a multi-process run (rank 0 wrote)
};

// Graceful stop: while train() runs, SIGINT, SIGTERM and SIGUSR1 (what
// batch schedulers send before a job's time runs out, e.g. SLURM's
// `--signal=USR1@120`) finish the current step, write a checkpoint at that
// step (atomically, like every checkpoint) and return with
// `stopped_by_signal` set; `--resume` then continues exactly. A second SIGINT
// while stopping kills the process at once (the default action). The
// previous handlers are restored when train() returns.
TrainResult train(const RunConfig& cfg, const TrainOptions& opt);

// Wall seconds per training step (loader, then train_step: forward, NT-Xent, backward, LARS)
// of cfg's model and batch on this machine: `steps` steps after one warm-up
// step, on a throw-away model with real batches (nothing is written).
struct StepTiming {
  double seconds_per_step = 0;
  int64_t steps_per_epoch = 0;
  DType compute_dtype = DType::f32;  // the precision the timed steps ran in (the run's train.precision)
};
StepTiming measure_step_seconds(const RunConfig& cfg, int steps);

}  // namespace simclr
