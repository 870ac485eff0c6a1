// kernels/cpu/ntxent_fast.h - the fast fp32 CPU path of NT-Xent
// (kernels/cpu/ntxent_fast.cpp), same contract as the reference
// (kernels/ntxent.h, kernels/cpu/ntxent.cpp), which stays the oracle and the
// float64 path.
//
// What the CPU backend's f32 row runs (kernels/cpu/table.cpp):
// ntxent_cpu_f32_forward/backward choose this path when
// ntxent_fast_eligible(V, tau) (2N >= kNtxentFastMinRows and τ >= kNtxentMinTau,
// the bound that keeps exp((s-1)/τ) a normal float), the reference otherwise.
// f64 always runs the reference; SIMCLR_CPU_NTXENT=reference makes f32 run it too.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/ntxent.h"

namespace simclr::cpu {

// Below this many rows the reference is as fast (and is what small tests see).
constexpr int64_t kNtxentFastMinRows = 512;
// Virtual workers: each owns a fixed set of tiles and its own accumulators,
// reduced in worker order, so results do not depend on the thread count.
// More threads than this are not used.
constexpr int kNtxentFastWorkers = 8;

struct NtxentFastOptions {
  int threads = 0;       // 0: omp_get_max_threads() (at most kNtxentFastWorkers)
  int block = 256;       // rows (and keys) per tile
  bool scalar = false;   // the portable loops even where AVX2+FMA is available
};

bool ntxent_fast_eligible(int64_t V, double tau);

// Forward of local rows [r0, r1): row_loss[R] = ℓ_i, lse[R] (either may be null).
// Needs τ >= kNtxentMinTau (checked).
void ntxent_fast_forward(float* row_loss, float* lse, const float* z, int64_t V, int64_t D, double tau, int64_t r0,
                         int64_t r1, const NtxentFastOptions& opt = {});
// dz[R,D] += dloss · dL/dz_j of the local rows, from z[V,D] and lse[V] (all rows).
void ntxent_fast_backward(float* dz, const float* z, const float* lse, double dloss, int64_t V, int64_t D, double tau,
                          int64_t r0, int64_t r1, const NtxentFastOptions& opt = {});

// Peak bytes the fast path allocates for one call (forward or backward, the
// larger): O(V·D + workers·R·D + threads·block²).
size_t ntxent_fast_extra_bytes(int64_t V, int64_t D, int64_t R, const NtxentFastOptions& opt = {});

// The vectorised exp2 the tiles use, on n values in place (simd: the AVX2
// kernel where the CPU has it; else the portable one). For tests.
void ntxent_fast_exp2(float* x, int64_t n, bool simd);
bool ntxent_fast_has_avx2();

// The CPU backend's f32 NtxentKernels functions: fast path or reference.
void ntxent_cpu_f32_forward(float* loss, float* lse, const float* z, void* workspace, int64_t V, int64_t D,
                            double tau, int64_t r0, int64_t r1);
void ntxent_cpu_f32_backward(float* dz, const float* z, const float* lse, const float* dloss, void* workspace,
                             int64_t V, int64_t D, double tau, int64_t r0, int64_t r1);

}  // namespace simclr::cpu
