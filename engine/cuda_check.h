// engine/cuda_check.h - the check macros for CUDA, cuBLAS, cuDNN and NCCL
// calls. Each names the call, file, line and device, then throws simclr::Error.
// Only for code compiled with the CUDA backend (real CUDA, not the emulator).
#pragma once
#include <cuda_runtime.h>

#include "engine/check.h"

namespace simclr::detail {
[[noreturn]] void cuda_fail(const char* lib, const char* call, const char* msg, const char* file, int line);
}

#define CUDA_CHECK(call)                                                               \
  do {                                                                                 \
    cudaError_t e_ = (call);                                                           \
    if (e_ != cudaSuccess)                                                             \
      ::simclr::detail::cuda_fail("CUDA", #call, cudaGetErrorString(e_), __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports launch-configuration errors at once.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                              \
  do {                                                                                  \
    int s_ = static_cast<int>(call);                                                    \
    if (s_ != 0)                                                                        \
      ::simclr::detail::cuda_fail("cuBLAS", #call, ::simclr::detail::cat("status ", s_).c_str(), \
                                  __FILE__, __LINE__);                                  \
  } while (0)

#define CUDNN_CHECK(call)                                                               \
  do {                                                                                  \
    auto s_ = (call);                                                                   \
    if (s_ != CUDNN_STATUS_SUCCESS)                                                     \
      ::simclr::detail::cuda_fail("cuDNN", #call, cudnnGetErrorString(s_), __FILE__, __LINE__); \
  } while (0)

#define NCCL_CHECK(call)                                                                \
  do {                                                                                  \
    auto s_ = (call);                                                                   \
    if (s_ != ncclSuccess)                                                              \
      ::simclr::detail::cuda_fail("NCCL", #call, ncclGetErrorString(s_), __FILE__, __LINE__); \
  } while (0)
