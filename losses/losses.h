// losses/losses.h - the differentiable losses: softmax cross-entropy (the
// linear probe) and NT-Xent (SimCLR). Same conventions as ops/ops.h.
#pragma once
#include "engine/comm.h"
#include "ops/ops.h"

namespace simclr {

// Mean softmax cross-entropy of logits[N,K] against labels[N] (i32 or i64).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);
// NT-Xent (SimCLR) of embeddings z[V,D], V = 2N, NOT yet normalised. Layout:
// rows [0, N) are view 1 of images 0..N-1, rows [N, 2N) view 2 of the same
// images, so the positive of row i is row (i + N) mod 2N. Returns the mean over
// all V rows of -log( exp(s_ip/τ) / Σ_{k≠i} exp(s_ik/τ) ), s = cosine sim.
// CPU: f32/f64, the loss in z's dtype. CUDA (the fused kernels): f32/bf16,
// τ >= kNtxentMinTau (kernels/ntxent.h), the loss f32 on the device.
//
// With comm (size R > 1): negatives from every rank. Each rank passes its own
// z[2B, D] ([view 1 of its B images; view 2]), every rank the same B; the
// global batch is the ranks' images in rank order (rank r holds global images
// [rB, rB + B)), so the global z[2RB, D] is [all view 1; all view 2], exactly
// one process's z for the R·B images. The op all-gathers z (both halves) and
// the per-row log-sum-exp, and returns the GLOBAL loss (the ranks' partial
// sums all-reduced: the same value on every rank); backward writes the
// complete gradient of that loss for this rank's rows (their terms as
// negatives of every other row included), so the step sums the ranks'
// parameter gradients and never all-reduces key gradients. comm must outlive
// backward (which runs no collective).
Tensor ntxent(const Tensor& z, double tau, Communicator* comm = nullptr);

}  // namespace simclr
