// train/step.h - one SimCLR training step, the only place it is written out.
//
//   zero the gradients -> encoder f (BN in training mode) -> projection head g
//   -> NT-Xent(z, temperature) -> [non-finite loss: stop here] -> backward
//   -> gradient all-reduce (multi-process only) -> optimiser step at lr.
//
// Used by train() (train/trainer.h), measure_step_seconds() (the quickstart
// calibration), benchmarks/bench_train_step and the tests, so that all of
// them time and check the same operations in the same order.
#pragma once
#include <functional>

#include "engine/comm.h"
#include "engine/tensor.h"
#include "optim/optimizer.h"
#include "train/model.h"

namespace simclr {

struct StepResult {
  double loss = 0;       // the step's loss (as loss_filter returned it, when one is given)
  bool updated = false;  // false: the loss was not finite, so the step stopped before backward and
                         // the update (parameters and optimiser state unchanged, the tape cleared)
};

// Test seam: replaces the loss value before the finite check (e.g. NaN).
using LossFilter = std::function<double(double loss)>;

// One step on `views` ([2N, S, S, C], [view 1; view 2]). comm: null or a
// size-1 communicator means a single process (no all-reduce); with more
// ranks the flat gradient (ParamStore::grads) is summed over ranks before the
// update, so each rank's loss must be its share of the global loss. Profile
// phases (engine/profile.h): "ntxent", "backward (total)", "all_reduce",
// "optimizer"; the model's ops time themselves.
StepResult train_step(const Tensor& views, SimclrModel& model, Optimizer& optimizer, double lr, double temperature,
                      Communicator* comm = nullptr, const LossFilter& loss_filter = {});

}  // namespace simclr
