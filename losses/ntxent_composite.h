// losses/ntxent_composite.h - NT-Xent written the textbook (PyTorch) way, as a
// composite of primitive differentiable ops. It is the reference the fused op
// (losses/losses.h ntxent, kernels/ntxent.h) is tested against, forward and
// gradients (tests/test_op_table.cpp); it is not used for training: it
// materialises the V x V similarity and logit matrices (O(V²) memory).
//
//   ẑ      = l2_normalize(z)                  [V,D]  (eps 1e-12, as the fused op)
//   S      = linear(ẑ, ẑ)  = ẑ ẑᵀ             [V,V]  cosine similarities
//   logits = scale(S, 1/τ) + M                [V,V]  M: -1e9 on the diagonal, 0 elsewhere
//   L      = cross_entropy(logits, p)                p_i = (i + N) mod 2N, the positive
//
// The mask is a large finite constant instead of -inf: exp(-1e9 + s/τ - lse)
// underflows to exactly 0 in f32 and f64 (|s/τ| <= 1/τ is far below 1e9), so
// row i's softmax runs over k ≠ i exactly as in the fused op, and no
// -inf - (-inf) can make a NaN.
#pragma once
#include "engine/tensor.h"

namespace simclr {

// z[V,D], V = 2N even, NOT yet normalised; same layout and value as ntxent(z, tau).
Tensor ntxent_composite(const Tensor& z, double tau);

}  // namespace simclr
