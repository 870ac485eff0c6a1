// engine/ops_nn.cpp - convolution, pooling, batch norm, L2 normalisation and
// cross-entropy. (Placeholders until the CPU reference kernels land.)
#include "engine/ops.h"

namespace simclr {

Tensor conv2d(const Tensor&, const Tensor&, int, int) { fail("conv2d: not implemented yet"); }
Tensor max_pool2d(const Tensor&, int, int, int) { fail("max_pool2d: not implemented yet"); }
Tensor global_avg_pool(const Tensor&) { fail("global_avg_pool: not implemented yet"); }
Tensor batch_norm(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                  const BatchNormOptions&) {
  fail("batch_norm: not implemented yet");
}
Tensor l2_normalize(const Tensor&, double) { fail("l2_normalize: not implemented yet"); }
Tensor cross_entropy(const Tensor&, const Tensor&) { fail("cross_entropy: not implemented yet"); }

}  // namespace simclr
