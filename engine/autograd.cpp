// engine/autograd.cpp - the tape (see autograd.h).
#include "engine/autograd.h"

#include "engine/async.h"
#include "engine/grad_hooks.h"
#include "engine/profile.h"

namespace simclr {

namespace {
thread_local std::vector<TapeNode> t_tape;
thread_local bool t_grad_enabled = true;
// engine/grad_hooks.h: the observer of this thread and the tape node whose backward runs.
thread_local GradObserver* t_observer = nullptr;
thread_local size_t t_node = 0;
void notify_access(const Tensor& t) {
  if (t_observer != nullptr) t_observer->on_grad_access(&t.impl(), t_node);
}
}  // namespace

GradObserverScope::GradObserverScope(GradObserver* o) : prev_(t_observer) { t_observer = o; }
GradObserverScope::~GradObserverScope() { t_observer = prev_; }

bool grad_enabled() { return t_grad_enabled; }

bool needs_grad(std::initializer_list<Tensor> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor grad_for(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return Tensor();
  notify_access(t);
  Tensor g = t.grad();
  if (!g.defined()) {
    g = Tensor::zeros(t.shape(), t.dtype(), t.device());
    t.impl().grad = g.impl_ptr();
  }
  return g;
}

Tensor grad_for_write(const Tensor& t, bool* accumulate) {
  if (!t.defined() || !t.requires_grad()) return Tensor();
  notify_access(t);
  Tensor g = t.grad();
  if (g.defined()) {
    *accumulate = true;
    return g;
  }
  g = Tensor::empty(t.shape(), t.dtype(), t.device());
  t.impl().grad = g.impl_ptr();
  *accumulate = false;
  return g;
}

void record(const char* op, std::function<void()> backward) { t_tape.push_back({op, std::move(backward)}); }

size_t tape_size() { return t_tape.size(); }

std::vector<std::string> tape_ops() {
  std::vector<std::string> v;
  for (const TapeNode& n : t_tape) v.emplace_back(n.op);
  return v;
}

void backward(const Tensor& loss) {
  SIMCLR_CHECK(loss.numel() == 1, "backward: the loss must have one element, got ", loss.describe());
  SIMCLR_CHECK(loss.requires_grad(), "backward: the loss ", loss.describe(),
               " does not depend on anything that requires grad");
  Tensor seed;
  if (loss.device().runs_cuda_code()) {  // a device copy of a cached 1, so a captured step replays it
    seed = Tensor::empty(loss.shape(), loss.dtype(), loss.device());
    seed.copy_from(device_scalar(1.0, loss.dtype(), loss.device()));
  } else {
    seed = Tensor::full(loss.shape(), 1.0, loss.dtype(), loss.device());
  }
  loss.impl().grad = seed.impl_ptr();
  // Move the tape out first so that a throwing backward leaves a clean tape.
  std::vector<TapeNode> tape;
  tape.swap(t_tape);
  for (size_t k = tape.size(); k-- > 0;) {
    t_node = k;
    {
      BackwardTimer timer(tape[k].op);  // engine/profile.h: a no-op unless profiling is on
      tape[k].backward();
    }
    if (t_observer != nullptr) t_observer->on_node_done(k);
  }
}

void clear_tape() { t_tape.clear(); }

NoGrad::NoGrad() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGrad::~NoGrad() { t_grad_enabled = prev_; }

}  // namespace simclr
