// losses/losses.h - the differentiable losses: softmax cross-entropy (the
// linear probe) and NT-Xent (SimCLR). Same conventions as ops/ops.h.
#pragma once
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
Tensor ntxent(const Tensor& z, double tau);

}  // namespace simclr
