// kernels/cpu/table.cpp - what the CPU backend implements: one row per
// (op, dtype), each a kernel set of kernels/X.h filled with the CPU kernels
// of kernels/cpu/X.cpp (kernels/registry.h). supports() and dispatch<>() read
// this table and nothing else: an op gains the CPU backend by its two rows
// here (f32 and f64; f64 serves the gradient checks), and bf16 rows for the
// ops of the model under train.precision bf16.
#include "kernels/batchnorm.h"
#include "kernels/cast.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/ntxent_fast.h"
#include "kernels/elementwise.h"
#include "kernels/norm_loss.h"
#include "kernels/ntxent.h"
#include "kernels/pool.h"
#include "kernels/registry.h"

namespace simclr {

namespace {
using namespace cpu;

template <class T>
constexpr ReluKernels<T> relu_k{&relu_forward<T>, &relu_backward<T>};
template <class T>
constexpr AddKernels<T> add_k{&add_forward<T>, &add_backward<T>};
template <class T>
constexpr AddReluKernels<T> add_relu_k{&add_relu_forward<T>, &add_relu_backward<T>};
template <class T>
constexpr SumProductKernels<T> sum_product_k{&sum_product_forward<T>, &sum_product_backward<T>};
template <class T>
constexpr MeanKernels<T> mean_k{&mean_forward<T>, &mean_backward<T>};
template <class T>
constexpr ScaleKernels<T> scale_k{&scale_forward<T>, &scale_backward<T>};
template <class T>
constexpr LinearKernels<T> linear_k{&linear_forward<T>, &linear_backward<T>};
template <class T>
constexpr Conv2dKernels<T> conv2d_k{&conv2d_forward_cpu<T>, &conv2d_backward_cpu<T>};
template <class T>
constexpr MaxPool2dKernels<T> max_pool2d_k{&max_pool2d_forward<T>, &max_pool2d_backward<T>};
template <class T>
constexpr GlobalAvgPoolKernels<T> global_avg_pool_k{&global_avg_pool_forward<T>, &global_avg_pool_backward<T>};
template <class T>
constexpr BatchNormKernels<T> batch_norm_k{
    .stats = &batchnorm_batch_stats<T>,
    .merge_stats = &batchnorm_merge_stats,
    .running_f32 = {&batchnorm_finalize<T, float>, &batchnorm_from_running<T, float>},
    .running_f64 = {&batchnorm_finalize<T, double>, &batchnorm_from_running<T, double>},
    .forward = &batchnorm_forward<T>,
    .backward_reduce = &batchnorm_backward_reduce<T>,
    .backward_finalize = &batchnorm_backward_finalize<T>,
    .backward_dx = &batchnorm_backward_dx<T>,
};
template <class T>
constexpr L2NormalizeKernels<T> l2_normalize_k{&l2_normalize_forward<T>, &l2_normalize_backward<T>};
template <class T>
constexpr CrossEntropyKernels<T> cross_entropy_k{
    .i32 = {&cross_entropy_check_labels<int32_t>, &cross_entropy_forward<T, int32_t>,
            &cross_entropy_backward<T, int32_t>},
    .i64 = {&cross_entropy_check_labels<int64_t>, &cross_entropy_forward<T, int64_t>,
            &cross_entropy_backward<T, int64_t>},
};
template <class T>
constexpr NtxentKernels<T> ntxent_k{
    .min_tau = 0.0,  // the reference accepts any τ > 0
    .workspace_bytes = &ntxent_loss_workspace_bytes<T>,
    .forward = &ntxent_loss_forward<T>,
    .backward = &ntxent_loss_backward<T>,
};
// f32: the fast tiled path from 2N >= kNtxentFastMinRows (and τ >= kNtxentMinTau),
// the reference below that (kernels/cpu/ntxent_fast.h); f64 stays the reference.
template <>
constexpr NtxentKernels<float> ntxent_k<float>{
    .min_tau = 0.0,  // below kNtxentMinTau the reference runs
    .workspace_bytes = &ntxent_loss_workspace_bytes<float>,
    .forward = &ntxent_cpu_f32_forward,
    .backward = &ntxent_cpu_f32_backward,
};

// cast: every pair of f32, f64, bf16.
template <class T>
constexpr CastKernels<T> cast_k{&cast_kernel<T, float>, &cast_kernel<T, double>, &cast_kernel<T, bf16>};

// Both rows (f32, f64) of one kernel set.
#define ROWS(set) kernel_row(set<float>), kernel_row(set<double>)
constexpr KernelRow kRows[] = {
    ROWS(relu_k),         ROWS(add_k),           ROWS(add_relu_k),   ROWS(sum_product_k),
    ROWS(mean_k),         ROWS(scale_k),         ROWS(linear_k),     ROWS(conv2d_k),
    ROWS(max_pool2d_k),   ROWS(global_avg_pool_k), ROWS(batch_norm_k), ROWS(l2_normalize_k),
    ROWS(cross_entropy_k), ROWS(ntxent_k),        ROWS(cast_k),
    kernel_row(cast_k<bf16>),
    // bf16 (train.precision bf16 on the CPU): the ops of the encoder and head.
    // The same kernels over bf16 storage with f32 arithmetic (kernels/cpu/acc.h),
    // oneDNN's bf16 convolutions where the CPU has AVX512-BF16/AMX
    // (kernels/conv2d.h); the loss runs on z cast back to f32.
    kernel_row(relu_k<bf16>), kernel_row(add_k<bf16>), kernel_row(add_relu_k<bf16>),
    kernel_row(sum_product_k<bf16>), kernel_row(mean_k<bf16>), kernel_row(scale_k<bf16>),
    kernel_row(linear_k<bf16>), kernel_row(conv2d_k<bf16>), kernel_row(max_pool2d_k<bf16>),
    kernel_row(global_avg_pool_k<bf16>), kernel_row(batch_norm_k<bf16>),
};
#undef ROWS
}  // namespace

std::span<const KernelRow> cpu_kernel_table() { return kRows; }

}  // namespace simclr
