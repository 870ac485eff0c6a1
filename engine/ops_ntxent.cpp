// engine/ops_ntxent.cpp - the NT-Xent op. (Placeholder until the reference lands.)
#include "engine/ops.h"

namespace simclr {

Tensor ntxent(const Tensor&, double) { fail("ntxent: not implemented yet"); }

}  // namespace simclr
