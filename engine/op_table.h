// engine/op_table.h - the op enum and its name table. A new op without a name
// does not compile. Which backend implements which (op, dtype) is not said
// here but in each backend's table beside its kernels (kernels/registry.h:
// supports(), dispatch<>()).
#pragma once
#include "engine/dtype.h"

namespace simclr {

enum class Op : uint8_t {
  relu,
  add,
  add_relu,
  sum_product,
  mean,
  scale,
  linear,
  conv2d,
  max_pool2d,
  global_avg_pool,
  batch_norm,
  l2_normalize,
  cross_entropy,
  ntxent,
  cast,
  COUNT
};

const char* op_name(Op op);
constexpr int kNumOps = static_cast<int>(Op::COUNT);

}  // namespace simclr
