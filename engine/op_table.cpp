// engine/op_table.cpp - op names and the support table.
#include "engine/op_table.h"

namespace simclr {

namespace {
constexpr const char* kOpNames[] = {
    "relu",       "add",           "add_relu",      "sum_product",   "mean",   "scale",
    "linear",     "conv2d",        "max_pool2d",    "global_avg_pool",
    "batch_norm", "l2_normalize",  "cross_entropy", "ntxent",
};
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == static_cast<size_t>(Op::COUNT),
              "kOpNames out of sync with enum Op");
}  // namespace

const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }

bool supports(DeviceKind backend, Op op, DType dtype) {
  (void)op;
  if (backend == DeviceKind::cpu) return dtype == DType::f32 || dtype == DType::f64;
  // CUDA: the fused NT-Xent kernel exists; the rest of the CUDA backend comes
  // with the "full CUDA backend" issue.
  if (backend == DeviceKind::cuda) return op == Op::ntxent && (dtype == DType::f32 || dtype == DType::bf16);
  return false;
}

void check_supported(Op op, Device device, DType dtype) {
  SIMCLR_CHECK(supports(device.kind, op, dtype), "op ", op_name(op), " is not supported on ",
               device.str(), " for dtype ", dtype_name(dtype));
}

}  // namespace simclr
