// engine/grad_hooks.h - watching the backward pass, for work that should start
// as soon as a gradient is final (the gradient all-reduce in buckets,
// train/grad_buckets.h) instead of after the whole backward.
//
// Tape nodes are numbered in forward order (0 = the first op recorded);
// backward() runs them from the last to the first. While a GradObserver is
// installed on the thread, backward() tells it
//   - on_grad_access(t, k): node k's backward asked for the gradient buffer of
//     t (grad_for / grad_for_write), i.e. it is about to add to t's gradient;
//   - on_node_done(k): node k's backward has returned (its kernels are issued;
//     on a device they run later, in stream order).
// So a leaf's gradient is final once on_node_done(k) has been called for the
// smallest k that accessed it. The observer learns those k on one backward and
// relies on them on the next ones: the tape is rebuilt in the same order every
// step (engine/autograd.h).
#pragma once
#include <cstddef>

#include "engine/tensor.h"

namespace simclr {

class GradObserver {
 public:
  virtual ~GradObserver() = default;
  virtual void on_grad_access(const TensorImpl* t, size_t node) = 0;
  virtual void on_node_done(size_t node) = 0;
};

// Installs `o` on this thread for its lifetime (scopes nest; the previous one
// comes back at the end).
class GradObserverScope {
 public:
  explicit GradObserverScope(GradObserver* o);
  ~GradObserverScope();
  GradObserverScope(const GradObserverScope&) = delete;
  GradObserverScope& operator=(const GradObserverScope&) = delete;

 private:
  GradObserver* prev_;
};

}  // namespace simclr
