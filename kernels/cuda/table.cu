// kernels/cuda/table.cu - what the CUDA backend implements: one row per
// (op, dtype), each a kernel set of kernels/X.h filled with the CUDA
// launchers of kernels/cuda/X.cu, wrapped where the launcher's signature is
// richer than the shared contract (kernels/registry.h). Like every .cu here it
// is compiled twice (kernels/cuda/common.cuh): as gpu::kernel_table (the real
// build; cuda_kernel_table() returns it) and as emu::kernel_table (the same
// rows running under the kernel emulator, for tests/emu).
//
// The wrappers issue their launches on the engine's stream of the current
// device (engine/device.h cuda_current_stream; the emulator has one stream,
// nullptr) and let the launchers pick the key split (ksplit = 0: auto, the
// same for the workspace query, the forward and the backward of one shape).
#include "kernels/cuda/common.cuh"

#include <span>
#include <type_traits>

#include "kernels/batchnorm.h"
#include "kernels/cast.h"
#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/norm_loss.h"
#include "kernels/ntxent.h"
#include "kernels/pool.h"
#include "kernels/registry.h"
#ifndef SIMCLR_EMU
#include "engine/device.h"
#endif

namespace simclr::SIMCLR_KNS {

namespace {

void* current_stream() {
#ifdef SIMCLR_EMU
  return nullptr;
#else
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  return cuda_current_stream(device);
#endif
}

template <class T>
size_t ntxent_ws(int64_t V, int64_t D, int64_t R) {
  return ntxent_workspace_bytes(V, D, R, std::is_same_v<T, float>, ntxent_resolve_ksplit(0, V, R));
}
template <class T>
void ntxent_fwd(float* loss, float* lse, const T* z, void* workspace, int64_t V, int64_t D, double tau, int64_t r0,
                int64_t r1) {
  ntxent_forward(loss, lse, z, workspace, V, D, tau, r0, r1, ntxent_resolve_ksplit(0, V, r1 - r0), current_stream());
}
template <class T>
void ntxent_bwd(T* dz, const T* z, const float* lse, const float* dloss, void* workspace, int64_t V, int64_t D,
                double tau, int64_t r0, int64_t r1) {
  ntxent_backward(dz, z, lse, dloss, workspace, V, D, tau, r0, r1, ntxent_resolve_ksplit(0, V, r1 - r0),
                  current_stream());
}
template <class T>
constexpr NtxentKernels<T> ntxent_k{kNtxentMinTau, &ntxent_ws<T>, &ntxent_fwd<T>, &ntxent_bwd<T>};

// ---- elementwise + pool (h1): kernels/cuda/elementwise.cu, kernels/cuda/pool.cu
cudaStream_t engine_stream() { return static_cast<cudaStream_t>(current_stream()); }
template <class T>
constexpr ReluKernels<T> relu_k{
    [](T* y, const T* x, int64_t n) { relu_forward(y, x, n, engine_stream()); },
    [](T* dx, bool acc, const T* dy, const T* y, int64_t n) { relu_backward(dx, acc, dy, y, n, engine_stream()); }};
template <class T>
constexpr AddKernels<T> add_k{
    [](T* y, const T* a, const T* b, int64_t n) { add_forward(y, a, b, n, engine_stream()); },
    [](T* da, bool acc_a, T* db, bool acc_b, const T* dy, int64_t n) {
      add_backward(da, acc_a, db, acc_b, dy, n, engine_stream());
    }};
template <class T>
constexpr AddReluKernels<T> add_relu_k{
    [](T* y, const T* a, const T* b, int64_t n) { add_relu_forward(y, a, b, n, engine_stream()); },
    [](T* da, bool acc_a, T* db, bool acc_b, const T* dy, const T* y, int64_t n) {
      add_relu_backward(da, acc_a, db, acc_b, dy, y, n, engine_stream());
    }};
template <class T>
constexpr SumProductKernels<T> sum_product_k{
    [](T* y, const T* a, const T* r, int64_t n) { sum_product_forward(y, a, r, n, engine_stream()); },
    [](T* da, const T* r, const T* dy, int64_t n) { sum_product_backward(da, r, dy, n, engine_stream()); }};
template <class T>
constexpr MeanKernels<T> mean_k{[](T* y, const T* x, int64_t n) { mean_forward(y, x, n, engine_stream()); },
                                [](T* dx, const T* dy, int64_t n) { mean_backward(dx, dy, n, engine_stream()); }};
template <class T>
constexpr ScaleKernels<T> scale_k{
    [](T* y, const T* x, double s, int64_t n) { scale_forward(y, x, s, n, engine_stream()); },
    [](T* dx, const T* dy, double s, int64_t n) { scale_backward(dx, dy, s, n, engine_stream()); }};
template <class T>
constexpr MaxPool2dKernels<T> max_pool2d_k{
    [](T* y, int32_t* arg, const T* x, const Pool2dShape& s) { max_pool2d_forward(y, arg, x, s, engine_stream()); },
    [](T* dx, const T* dy, const int32_t* arg, const Pool2dShape& s) {
      max_pool2d_backward(dx, dy, arg, s, engine_stream());
    }};
template <class T>
constexpr GlobalAvgPoolKernels<T> global_avg_pool_k{
    [](T* y, const T* x, int64_t N, int64_t HW, int64_t C) { global_avg_pool_forward(y, x, N, HW, C, engine_stream()); },
    [](T* dx, const T* dy, int64_t N, int64_t HW, int64_t C) {
      global_avg_pool_backward(dx, dy, N, HW, C, engine_stream());
    }};
// ---- batchnorm + norm_loss (h2)
template <class T>
void bn_stats(double* stats, const T* x, int64_t M, int64_t C) {
  batchnorm_batch_stats(stats, x, M, C, current_stream());
}
inline void bn_merge_stats(double* stats, const double* parts, int64_t ranks, int64_t C) {
  batchnorm_merge_stats(stats, parts, ranks, C, current_stream());
}
template <class T, class B>
void bn_finalize(T* mean, T* invstd, B* running_mean, B* running_var, const double* stats, int64_t C, double eps,
                 double momentum) {
  batchnorm_finalize(mean, invstd, running_mean, running_var, stats, C, eps, momentum, current_stream());
}
template <class T, class B>
void bn_from_running(T* mean, T* invstd, const B* running_mean, const B* running_var, int64_t C, double eps) {
  batchnorm_from_running(mean, invstd, running_mean, running_var, C, eps, current_stream());
}
template <class T>
void bn_forward(T* y, const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, int64_t M, int64_t C,
                bool relu) {
  batchnorm_forward(y, x, mean, invstd, gamma, beta, M, C, relu, current_stream());
}
template <class T>
void bn_backward_reduce(double* sum_dy, double* sum_dy_xhat, const T* dy, const T* x, const T* y, const T* mean,
                        const T* invstd, int64_t M, int64_t C) {
  batchnorm_backward_reduce(sum_dy, sum_dy_xhat, dy, x, y, mean, invstd, M, C, current_stream());
}
template <class T>
void bn_backward_finalize(T* dgamma, T* dbeta, T* mean_dy, T* mean_dy_xhat, const double* red, const double* red_all,
                          const double* stats, int64_t C) {
  batchnorm_backward_finalize(dgamma, dbeta, mean_dy, mean_dy_xhat, red, red_all, stats, C, current_stream());
}
template <class T>
void bn_backward_dx(T* dx, bool accumulate, const T* dy, const T* x, const T* y, const T* mean, const T* invstd,
                    const T* gamma, const T* mean_dy, const T* mean_dy_xhat, int64_t M, int64_t C) {
  batchnorm_backward_dx(dx, accumulate, dy, x, y, mean, invstd, gamma, mean_dy, mean_dy_xhat, M, C, current_stream());
}
template <class T>
constexpr BatchNormKernels<T> batchnorm_k{&bn_stats<T>,
                                          &bn_merge_stats,
                                          {&bn_finalize<T, float>, &bn_from_running<T, float>},
                                          {&bn_finalize<T, double>, &bn_from_running<T, double>},
                                          &bn_forward<T>,
                                          &bn_backward_reduce<T>,
                                          &bn_backward_finalize<T>,
                                          &bn_backward_dx<T>};

template <class T>
void l2n_forward(T* y, const T* x, int64_t V, int64_t D, double eps) {
  l2_normalize_forward(y, x, V, D, eps, current_stream());
}
template <class T>
void l2n_backward(T* dx, const T* dy, const T* x, int64_t V, int64_t D, double eps) {
  l2_normalize_backward(dx, dy, x, V, D, eps, current_stream());
}
template <class T>
constexpr L2NormalizeKernels<T> l2_normalize_k{&l2n_forward<T>, &l2n_backward<T>};

template <class L>
BadLabel ce_check_labels(const L* labels, int64_t N, int64_t K) {
  return cross_entropy_check_labels(labels, N, K, current_stream());
}
template <class T, class L>
void ce_forward(T* loss, T* lse, const T* logits, const L* labels, int64_t N, int64_t K) {
  cross_entropy_forward(loss, lse, logits, labels, N, K, current_stream());
}
template <class T, class L>
void ce_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const L* labels, int64_t N, int64_t K) {
  cross_entropy_backward(dlogits, dloss, logits, lse, labels, N, K, current_stream());
}
template <class T>
constexpr CrossEntropyKernels<T> cross_entropy_k{
    .i32 = {&ce_check_labels<int32_t>, &ce_forward<T, int32_t>, &ce_backward<T, int32_t>},
    .i64 = {&ce_check_labels<int64_t>, &ce_forward<T, int64_t>, &ce_backward<T, int64_t>}};
// ---- end batchnorm + norm_loss (h2)
// ---- conv2d + linear, our kernels (h3): kernels/cuda/conv2d.cu, gemm.cu (automatic split-K)
// The emulated build runs our kernels (kernels/cuda/conv2d.cu, gemm.cu; automatic split-K). The
// real build runs cuDNN's graph API for convolutions unless train.conv_impl = ours or the build
// has no cuDNN frontend (engine/device.h cuda_conv_impl), and cuBLASLt for linear layers.
template <class T>
void conv2d_fwd(T* y, const T* x, const T* w, const Conv2dShape& s) {
  const auto stream = static_cast<cudaStream_t>(current_stream());
#ifndef SIMCLR_EMU
  if (cuda_conv_impl() == ConvImpl::cudnn && conv2d_cudnn_available()) return conv2d_forward_cudnn(y, x, w, s, stream);
#endif
  conv2d_forward_ours(y, x, w, s, stream);
}
template <class T>
void conv2d_bwd(T* dx, bool dx_accumulate, T* dw, const T* dy, const T* x, const T* w, const Conv2dShape& s) {
  const auto stream = static_cast<cudaStream_t>(current_stream());
#ifndef SIMCLR_EMU
  if (cuda_conv_impl() == ConvImpl::cudnn && conv2d_cudnn_available())
    return conv2d_backward_cudnn(dx, dx_accumulate, dw, dy, x, w, s, stream);
#endif
  conv2d_backward_ours(dx, dx_accumulate, dw, dy, x, w, s, 0, stream);
}
template <class T>
void linear_fwd(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O) {
  const auto stream = static_cast<cudaStream_t>(current_stream());
#ifdef SIMCLR_EMU
  linear_forward_ours(y, x, w, b, N, I, O, stream);
#else
  linear_forward_cublaslt(y, x, w, b, N, I, O, stream);
#endif
}
template <class T>
void linear_bwd(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I, int64_t O) {
  const auto stream = static_cast<cudaStream_t>(current_stream());
#ifdef SIMCLR_EMU
  linear_backward_ours(dx, dw, db, dy, x, w, N, I, O, 0, stream);
#else
  linear_backward_cublaslt(dx, dw, db, dy, x, w, N, I, O, stream);
#endif
}
template <class T>
constexpr Conv2dKernels<T> conv2d_k{&conv2d_fwd<T>, &conv2d_bwd<T>};
template <class T>
constexpr LinearKernels<T> linear_k{&linear_fwd<T>, &linear_bwd<T>};
// ---- end conv2d + linear (h3)

// ---- cast (h5): kernels/cuda/cast.cu, f32 <-> bf16
constexpr CastKernels<float> cast_f32_k{
    nullptr, nullptr,
    [](::simclr::bf16* y, bool acc, const float* x, int64_t n) { cast_f32_to_bf16(y, acc, x, n, engine_stream()); }};
constexpr CastKernels<::simclr::bf16> cast_bf16_k{
    [](float* y, bool acc, const ::simclr::bf16* x, int64_t n) { cast_bf16_to_f32(y, acc, x, n, engine_stream()); },
    nullptr, nullptr};

constexpr KernelRow kRows[] = {
    kernel_row(ntxent_k<float>),
    kernel_row(ntxent_k<::simclr::bf16>),
    // ---- elementwise + pool (h1)
    kernel_row(relu_k<float>),
    kernel_row(relu_k<::simclr::bf16>),
    kernel_row(add_k<float>),
    kernel_row(add_k<::simclr::bf16>),
    kernel_row(add_relu_k<float>),
    kernel_row(add_relu_k<::simclr::bf16>),
    kernel_row(sum_product_k<float>),
    kernel_row(sum_product_k<::simclr::bf16>),
    kernel_row(mean_k<float>),
    kernel_row(mean_k<::simclr::bf16>),
    kernel_row(scale_k<float>),
    kernel_row(scale_k<::simclr::bf16>),
    kernel_row(max_pool2d_k<float>),
    kernel_row(max_pool2d_k<::simclr::bf16>),
    kernel_row(global_avg_pool_k<float>),
    kernel_row(global_avg_pool_k<::simclr::bf16>),
    // ---- batchnorm + norm_loss (h2)
    kernel_row(batchnorm_k<float>),
    kernel_row(batchnorm_k<::simclr::bf16>),
    kernel_row(l2_normalize_k<float>),
    kernel_row(l2_normalize_k<::simclr::bf16>),
    kernel_row(cross_entropy_k<float>),
    kernel_row(cross_entropy_k<::simclr::bf16>),
    // ---- conv2d + linear: cuDNN / cuBLASLt on a GPU, our kernels under the emulator (above)
    kernel_row(conv2d_k<float>),
    kernel_row(conv2d_k<::simclr::bf16>),
    kernel_row(linear_k<float>),
    kernel_row(linear_k<::simclr::bf16>),
    // ---- cast (h5)
    kernel_row(cast_f32_k),
    kernel_row(cast_bf16_k),
};

}  // namespace

std::span<const KernelRow> kernel_table() { return kRows; }

}  // namespace simclr::SIMCLR_KNS

#ifndef SIMCLR_EMU
namespace simclr {
std::span<const KernelRow> cuda_kernel_table() { return gpu::kernel_table(); }
}  // namespace simclr
#endif
