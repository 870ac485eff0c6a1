// engine/blas.h - row-major GEMM on the CPU through OpenBLAS (float, double).
//   C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C
// op(A) = A (lda >= K) or A^T when trans_a (A stored [K,M], lda >= M); same for B.
#pragma once
#include <cstdint>

namespace simclr {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace simclr
