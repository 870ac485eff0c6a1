// engine/autograd.h - a minimal define-by-run tape.
//
// Each differentiable op, when any input requires grad and grad mode is on,
// appends one node to the thread's tape: the op name and a backward closure
// that holds exactly the tensors backward reads (inputs it needs, the output
// handle, saved statistics). backward(loss) seeds d loss / d loss = 1, walks
// the tape in reverse, and each closure reads its output's .grad and
// accumulates into its inputs' .grad (Tensor::accumulate_grad checks shape,
// dtype and device). The tape is then cleared; the next step rebuilds it in
// the same order, which keeps allocation order (and a captured CUDA graph)
// stable from step to step.
//
// Writing an op (see ops/elementwise.cpp for the pattern):
//   Tensor y = ...forward...;
//   if (needs_grad({x, w})) {
//     y.set_requires_grad();
//     record("conv2d", [x, w, y, ...]() { Tensor gy = y.grad(); if (!gy.defined()) return; ... });
//   }
#pragma once
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace simclr {

struct TapeNode {
  const char* op;
  std::function<void()> backward;
};

// Is grad mode on for this thread (false inside a NoGrad scope)?
bool grad_enabled();

// True when grad mode is on and any of the tensors requires grad.
bool needs_grad(std::initializer_list<Tensor> inputs);

// The gradient buffer of t for backward kernels to accumulate (+=) into:
// undefined when t does not require grad, else t's .grad, allocated as zeros
// on first use.
Tensor grad_for(const Tensor& t);

// For backward kernels that can either write (=) or accumulate (+=): when t
// requires grad but has no gradient yet, allocates it UNINITIALISED and sets
// *accumulate = false (the kernel must then write every element, saving the
// zero fill and a read); otherwise returns the existing buffer with
// *accumulate = true. Undefined (and *accumulate untouched) when t does not
// require grad.
Tensor grad_for_write(const Tensor& t, bool* accumulate);

// Append a node to this thread's tape.
void record(const char* op, std::function<void()> backward);

// Number of nodes on this thread's tape (tests, debugging).
size_t tape_size();
// Names of the ops on the tape, in order (tests, debugging).
std::vector<std::string> tape_ops();

// Backpropagate from a single-element loss; clears the tape afterwards.
void backward(const Tensor& loss);

// Drop the tape without running it (e.g. after an evaluation forward in grad mode).
void clear_tape();

// RAII scope that turns grad mode off (evaluation, feature extraction).
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool prev_;
};

}  // namespace simclr
