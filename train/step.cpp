// train/step.cpp - see step.h.
#include "train/step.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/profile.h"
#include "losses/losses.h"

namespace simclr {

namespace {
// zero the gradients -> f -> g -> NT-Xent: the loss (one element, on the model's device).
Tensor forward_loss(const Tensor& views, SimclrModel& model, double temperature, Communicator* comm) {
  SIMCLR_CHECK(model.head != nullptr, "train_step: the model was built without its projection head");
  model.store.zero_grad();
  // bf16: the views cast to bf16 (the whole forward follows its input's dtype) and z
  // back to f32, so the loss and its gradient are the fp32 NT-Xent (V x out values: a
  // negligible cast); f32: both casts are the identity (no op, no tape entry).
  // Multi-process (comm of more than one rank): global BN unless model.bn = local, and
  // NT-Xent with the negatives of every rank, whose loss is the global one (the same on
  // every rank) and whose gradient is this rank's share: the all-reduce below sums them.
  Communicator* bn_comm = model.encoder->config().global_bn ? comm : nullptr;
  Tensor h = model.encoder->forward(cast(views, model.compute_dtype), true, bn_comm);
  Tensor z = cast(model.head->forward(h, true, bn_comm), DType::f32);
  OpTimer t("ntxent");
  return ntxent(z, temperature, comm);
}

// backward -> all-reduce -> the optimiser at its staged lr.
// Multi-process: the flat gradient summed over the ranks, in buckets started during the
// backward pass (train/grad_buckets.h), or in one all-reduce after it (grad_bucket_bytes 0).
void backward_update(const Tensor& loss, SimclrModel& model, Optimizer& optimizer, Communicator* comm) {
  const bool reduce = comm != nullptr && comm->size() > 1;
  if (reduce && model.grad_bucket_bytes > 0) {
    if (!model.buckets || model.buckets->bucket_bytes() != model.grad_bucket_bytes)
      model.buckets = std::make_unique<GradBuckets>(model.store, model.grad_bucket_bytes);
    OpTimer t("backward (total)");  // with the bucket sums it starts (and, on the CPU, runs)
    model.buckets->backward_and_reduce(loss, *comm);
  } else {
    {
      OpTimer t("backward (total)");
      backward(loss);
    }
    if (reduce) {
      OpTimer t("all_reduce");
      comm->all_reduce_sum(model.store.grads());
    }
  }
  OpTimer t("optimizer");
  optimizer.step_staged();
}
}  // namespace

StepResult train_step(const Tensor& views, SimclrModel& model, Optimizer& optimizer, double lr, double temperature,
                      Communicator* comm, const LossFilter& loss_filter) {
  Tensor loss = forward_loss(views, model, temperature, comm);
  StepResult r;
  optimizer.stage_lr(lr);
  if (loss.device().runs_cuda_code()) {
    if (loss_filter) {  // the test seam: a host wait, then the filtered value back on the device
      const Tensor v = Tensor::full({1}, loss_filter(loss.item()), loss.dtype());
      loss.copy_from(v);
    }
    // The device path: no host wait (step.h); the optimiser's guard stops the update.
    if (optimizer.guard(loss)) {
      backward_update(loss, model, optimizer, comm);
      r.pending = true;
      return r;
    }
  }
  r.loss = loss.item();
  if (loss_filter && !loss.device().runs_cuda_code()) r.loss = loss_filter(r.loss);
  if (!std::isfinite(r.loss)) {
    clear_tape();
    return r;
  }
  backward_update(loss, model, optimizer, comm);
  r.updated = true;
  return r;
}

StepResult wait_result(const StepResult& r, const Optimizer& optimizer) {
  if (!r.pending) return r;
  const std::vector<float> g = optimizer.guard_state().to_floats();
  StepResult out;
  out.loss = g[0];
  out.updated = g[1] == 0.0f;
  return out;
}

CapturedStep::CapturedStep(SimclrModel& model, Optimizer& optimizer, double temperature, Communicator* comm,
                           int eager_steps)
    : model_(&model), optimizer_(&optimizer), temperature_(temperature), comm_(comm), eager_steps_(eager_steps) {
  const Device dev = model.store.device();
  SIMCLR_CHECK(dev.runs_cuda_code(), "train.cuda_graph needs the model on a GPU (or emu), not on ", dev.str());
  SIMCLR_CHECK(eager_steps >= 1, "CapturedStep: at least one eager step must come before the capture");
  SIMCLR_CHECK(comm == nullptr || comm->size() == 1, "train.cuda_graph with ", comm ? comm->size() : 1,
               " processes is not supported yet (the collectives inside the step are not captured): set "
               "train.cuda_graph = false");
}

StepResult CapturedStep::run(const Tensor& views, double lr) {
  const Device dev = model_->store.device();
  if (calls_++ < eager_steps_) {
    StepResult r = train_step(views.to(dev), *model_, *optimizer_, lr, temperature_, comm_);
    SIMCLR_CHECK(r.pending, "train.cuda_graph: the optimiser '", optimizer_->name(),
                 "' has no device guard (use optimizer.name = lars)");
    return r;
  }
  if (graph_.empty()) {
    input_ = Tensor::empty(views.shape(), views.dtype(), dev);  // the graph's input, kept for its lifetime
    copy_async(input_, views);
    optimizer_->stage_lr(lr);
    CaptureScope capture(dev);
    {
      Tensor loss = forward_loss(input_, *model_, temperature_, comm_);
      SIMCLR_CHECK(optimizer_->guard(loss), "train.cuda_graph: the optimiser '", optimizer_->name(),
                   "' has no device guard");
      backward_update(loss, *model_, *optimizer_, comm_);
    }  // every tensor of the step is released inside the capture
    graph_ = capture.end();
  } else {
    SIMCLR_CHECK(views.shape() == input_.shape() && views.dtype() == input_.dtype(), "train.cuda_graph: views ",
                 views.describe(), " differ from the captured step's ", input_.describe(),
                 " (a captured step has a fixed batch shape)");
    copy_async(input_, views);
    optimizer_->stage_lr(lr);
  }
  graph_.replay();
  StepResult r;
  r.pending = true;
  return r;
}

}  // namespace simclr
