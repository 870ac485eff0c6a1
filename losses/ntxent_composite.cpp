// losses/ntxent_composite.cpp - NT-Xent from primitive ops (see the header).
#include "losses/ntxent_composite.h"

#include <cmath>
#include <vector>

#include "kernels/ntxent.h"
#include "losses/losses.h"

namespace simclr {

Tensor ntxent_composite(const Tensor& z, double tau) {
  check_ndim("ntxent_composite", z, 2);
  const int64_t V = z.size(0), N = V / 2;
  SIMCLR_CHECK(V >= 2 && V % 2 == 0, "ntxent_composite: embeddings ", z.describe(),
               " must have an even number >= 2 of rows (two views per image)");
  SIMCLR_CHECK(tau > 0 && std::isfinite(tau), "ntxent_composite: temperature must be > 0, got ", tau);
  // The constants, built on the host and moved to z's device and dtype.
  std::vector<double> mask(static_cast<size_t>(V * V), 0.0);
  std::vector<int64_t> positive(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; i++) {
    mask[static_cast<size_t>(i * V + i)] = -1e9;
    positive[static_cast<size_t>(i)] = (i + N) % V;
  }
  const Tensor m = Tensor::from_vector(mask, {V, V}).to(z.dtype()).to(z.device());
  const Tensor labels = Tensor::from_vector(positive, {V}).to(z.device());

  const Tensor zn = l2_normalize(z, kNtxentEps);
  const Tensor sim = linear(zn, zn, Tensor());
  const Tensor logits = add(scale(sim, 1.0 / tau), m);
  return cross_entropy(logits, labels);
}

}  // namespace simclr
