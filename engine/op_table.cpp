// engine/op_table.cpp - op names.
#include "engine/op_table.h"

namespace simclr {

namespace {
constexpr const char* kOpNames[] = {
    "relu",       "add",           "add_relu",      "sum_product",   "mean",   "scale",
    "linear",     "conv2d",        "max_pool2d",    "global_avg_pool",
    "batch_norm", "l2_normalize",  "cross_entropy", "ntxent", "cast",
};
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == static_cast<size_t>(Op::COUNT),
              "kOpNames out of sync with enum Op");
}  // namespace

const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }

}  // namespace simclr
