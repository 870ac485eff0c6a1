// engine/op_table.h - the op enum, its name table, and which backend
// supports which op for which dtype. A new op without a name does not compile;
// an unsupported (backend, op, dtype) fails loudly naming all three.
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
  COUNT
};

const char* op_name(Op op);
bool supports(DeviceKind backend, Op op, DType dtype);
// Throws "op X is not supported on <device> for dtype Y" unless supported.
void check_supported(Op op, Device device, DType dtype);

}  // namespace simclr
