// kernels/cuda/ntxent.cu - fused NT-Xent on tensor cores, the CUDA twin of
// kernels/cpu/ntxent.cpp (contract and distributed form: kernels/ntxent.h).
// Compiled by nvcc (simclr::gpu) and, unchanged, by the host compiler for the
// kernel emulator (simclr::emu); the unfused baseline at the end calls cuBLAS
// on the GPU and a plain column-major GEMM loop under the emulator.
//
// Shape legend: V = 2N rows (views, global), D features, Dp = D rounded up to
// 64, R = r1 - r0 local rows (queries), BM = 128 rows per block, BN = 64 keys
// per tile, KC = 64 features per chunk.
//
// ============================================================ the maths
// ẑ_i = z_i / max(|z_i|, eps), s_ik = ẑ_i·ẑ_k, p(i) = (i + N) mod V, τ the
// temperature, ℓ_i = lse_i - s_ip/τ, lse_i = log Σ_{k≠i} e^{s_ik/τ}, L = (1/V)Σℓ_i.
//
// Softmax shift. Flash attention keeps a running row maximum because logits
// are unbounded. Ours are not: |ẑ| = 1 so s <= 1 (bf16 rounding of ẑ can
// lift s_ii to ~1 + 2^-7, and s_ii is masked anyway), hence every exponent
//     E_ik = exp((s_ik - 1)/τ) = exp2(c·s_ik - c),  c = log2(e)/τ,
// is <= ~1: no overflow, and a row sum Σ_i = Σ_{k≠i} E_ik >= exp(-2/τ)
// (some key has s >= -1), which stays a normal fp32 number for τ >= 2/87;
// kNtxentMinTau = 0.025 (checked) keeps it and the reciprocals below in
// range. So the online log-sum-exp needs no max and no rescaling: each tile
// adds its exp2 values, and lse_i = 1/τ + log Σ_i. One FFMA + one MUFU.EX2
// + one FADD per similarity. Partial sums of different key ranges simply add
// (the key split below, and in principle other ranks).
//
// Backward without S. Differentiating L (s_ik and s_ki are the same number,
// and p is an involution):
//   dL/dẑ_j = 1/(Vτ) [ Σ_k (P_jk + P_kj) ẑ_k - 2 ẑ_p(j) ],  P_jk = e^{s_jk/τ - lse_j} (k≠j), P_jj = 0.
// With the fixed shift, P_jk = E_jk·r_j and P_kj = E_jk·r_k where
// r_k = exp(1/τ - lse_k) = 1/Σ_k, so
//   G_jk = P_jk + P_kj = E_jk (r_j + r_k)        (one exp per similarity)
//   dẑ_j = 1/(Vτ) [ (G ẑ)_j - 2 ẑ_p(j) ].
// Only lse (V floats) is kept from the forward: one row-streaming pass
// recomputes each S tile on tensor cores, turns it into G in registers and
// multiplies it with the same key tile still in shared memory, giving the
// complete gradient of its rows (their role as keys of other rows is the P_kj
// term). Through the normalisation: dz_j = (dẑ_j - ẑ_j (ẑ_j·dẑ_j)) / |z_j|
// (dẑ_j / eps when |z_j| <= eps). The distributed form is the same pass over
// local rows with all keys and the all-gathered lse: nothing to all-reduce.
//
// ============================================================ precision
// bf16 input: ẑ is rounded to bf16 (relative 2^-9 per element), so a
// similarity is off by at most ~2^-8 and a logit by ~2^-8/τ; the
// tensor-core products are exact and accumulate in fp32. fp32 input: each
// normalised row is split into two bf16 planes, hi = bf16(ẑ), lo = bf16(ẑ-hi)
// (ẑ to ~2^-17), and S = hi·hiᵀ + hi·loᵀ + lo·hiᵀ (the dropped lo·lo term is
// ~2^-16 relative): about fp32-with-16-bit-mantissa accuracy for 3x the
// tensor-core work, more accurate than TF32 (2^-11) and still mma.m16n8k16.
// G is split the same way for the backward product. Row sums are fp32:
// a 16-term partial per tile, then Kahan-compensated across tiles; lse and
// the loss are fp32 (the loss reduction in double, one block, deterministic).
// Every reduction order is fixed: results are bitwise reproducible run to run.
//
// ============================================================ the kernels
// 1. ntxent_prepare_kernel: one warp per positive pair (i, i+N): norms,
//    ẑ planes [planes][V][Dp] bf16 (zero-padded features), inv_norm, spos_i =
//    ŝ_{i,p(i)} from the same rounded values the tensor cores see, and for the
//    backward rk_k = exp(1/τ - lse_k) (zero past V). O(V·D).
// 2. ntxent_tiles_kernel<PLANES, BWD, NS, QREG>: grid (ceil(R/BM), ksplit, slabs),
//    128 threads = 4 warps, warp w owns rows [32w, 32w+32) of the block's 128
//    query rows. Block y takes a contiguous range of key tiles (key split,
//    so small V still fills the device; the partials are summed in a fixed
//    order afterwards). Per key tile of 64 keys, for each 64-feature chunk:
//    Q chunk (resident in shared memory for the whole block when it fits:
//    planes·Dp <= 256 features) and K chunk arrive by cp.async in a 3-4 stage
//    ring; each warp computes its 32x64 S tile with ldmatrix + mma.m16n8k16
//    (2 m16 x 8 n8 fragments, each K fragment used for 2 row tiles). The bf16
//    forward with Dp <= 128 (QREG = Dp/64 chunks) moves the warp's Q
//    fragments into registers once, saving a third of the ldmatrix traffic
//    (the backward has no registers left for that). After the last chunk of
//    a tile:
//      forward: E = exp2(c·s - c), diagonal and keys >= V masked (only on the
//        tiles that touch them), 16-term partial row sums, Kahan across tiles;
//        at the end a quad shuffle gives each row's partial Σ.
//      backward: G = E (r_j + r_k) in fp32 registers, packed to bf16 (hi/lo)
//        in exactly the mma A-fragment layout (the m16n8 C fragments of two
//        adjacent n8 tiles ARE the A fragment of one k16 step: no shared-memory
//        round trip), then dẑ[32 x NS·64] += G·K_slab with ldmatrix.trans on
//        the K chunks still in the ring (the slab's chunks are loaded last in
//        each tile and the ring lags NS items behind, so they are not yet
//        overwritten). One block covers NS·64 output features (a "slab");
//        D > 128 uses several slabs, each recomputing S (costly for large D:
//        time grows ~ (D/128 + 1)/2 relative to the fused ideal).
//    Shared memory rows are 128 bytes with the 16-byte chunk index XOR
//    (row & 7): ldmatrix's 8 row reads and cp.async's writes hit 8 different
//    bank groups (no conflicts).
// 3. ntxent_finish_forward_kernel (one block): lse_i = 1/τ + log Σ_split,
//    loss = Σ ℓ_i / V. ntxent_finish_backward_kernel (one warp per row): sums
//    the split partials, subtracts 2ẑ_p with the same rounded ẑ_p the tensor
//    cores used (so that it cancels G_jp ẑ_p exactly when the positive
//    dominates), scales by dloss/(Vτ), and applies the normalisation backward
//    with ẑ_j recomputed in fp32 from z; dz += result (dz in z's dtype).
//
// Performance notes (targets: H100, bf16, 2N = 8192, d = 128). Per similarity
// the forward costs 2d tensor FLOPs + 1 exp; the backward 4d FLOPs + 1 exp.
// At d = 128 the forward is balanced between MUFU (16 ex2/clk/SM) and
// mma.sync, the backward is tensor-bound. Memory: workspace O(V·Dp): for
// 2N = 131072, d = 128: 32 MiB ẑ + 64 MiB partial dẑ (+ small vectors).
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/mma.cuh"
#include "kernels/ntxent.h"

#ifndef SIMCLR_EMU
#include <cublas_v2.h>

#include <mutex>
#endif

// Full unrolling keeps the fragment arrays in registers (nvcc); the host
// compiler of the emulated build does not know the pragma.
#ifdef SIMCLR_EMU
#define NTX_UNROLL
#else
#define NTX_UNROLL _Pragma("unroll")
#endif

namespace simclr::SIMCLR_KNS {

namespace {

constexpr int kBM = 128;        // query rows per block
constexpr int kBN = 64;         // keys per tile
constexpr int kKC = 64;         // features per chunk (128 bytes of bf16)
constexpr int kThreads = 128;   // 4 warps x 32 rows
constexpr int kRowBytes = kKC * 2;

using bf16_t = __nv_bfloat16;

template <int PLANES, bool BWD, int NS>
struct TileCfg {
  static constexpr int kStages = PLANES == 1 ? 4 : 3;  // ring slots (K, and Q when streamed)
  static constexpr int kLag = BWD ? NS : 1;            // items kept readable behind the current one
  static constexpr int kPrefetch = kStages - kLag;     // items in flight ahead
  static_assert(kPrefetch >= 2, "ring too small");
};

struct TileArgs {
  const bf16_t* zhat;  // [planes][V][Dp]
  const float* rk;     // [V rounded up to 64]  backward: exp(1/τ - lse_k), 0 past V
  float* out;          // forward: row partials [ksplit][R]; backward: dẑ partials [ksplit][R][Dp]
  int64_t V, r0, r1;
  int Dp, ksplit;
  float c2;            // log2(e)/τ
  int q_resident;      // the block's Q rows stay in shared memory (planes·Dp <= 256)
};

__host__ __device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// exp2 on the MUFU unit (ex2.approx: ~2 ulp, flushes denormals, which the
// fixed shift keeps out of the way). Exact exp2f under the emulator.
__device__ __forceinline__ float ex2(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return exp2f(x);
#endif
}

__device__ __forceinline__ float bf16_round(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

// Byte offset of 16-byte chunk c (0..7) of row r in a [rows][128 B] tile.
__device__ __forceinline__ uint32_t swz(int r, int c) {
  return static_cast<uint32_t>(r * kRowBytes + ((c ^ (r & 7)) << 4));
}


__device__ __forceinline__ float warp_sum(float v) {
NTX_UNROLL
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ------------------------------------------------------------ 1. prepare
// One warp per positive pair (i, i + N), 8 warps per block. Writes the ẑ
// planes (zero features D..Dp), inv_norm, spos and, when lse is given, rk.
template <class T, int PLANES>
__global__ void __launch_bounds__(256)
    ntxent_prepare_kernel(bf16_t* zhat, float* inv_norm, float* spos, float* rk, const T* z, const float* lse,
                          int64_t V, int D, int Dp, float inv_tau) {
  const int lane = threadIdx.x & 31;
  const int64_t N = V / 2;
  if (rk && blockIdx.x == 0)
    for (int64_t k = V + threadIdx.x; k < (V + 63) / 64 * 64; k += blockDim.x) rk[k] = 0.0f;
  const int64_t pair = static_cast<int64_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (pair >= N) return;  // whole warps leave together
  const int64_t ia = pair, ib = pair + N;
  const T* za = z + ia * D;
  const T* zb = z + ib * D;
  float na = 0.0f, nb = 0.0f;
  for (int c = lane; c < D; c += 32) {
    const float x = to_float(za[c]), y = to_float(zb[c]);
    na = fmaf(x, x, na);
    nb = fmaf(y, y, nb);
  }
  na = warp_sum(na);
  nb = warp_sum(nb);
  const float sa = 1.0f / fmaxf(sqrtf(na), 1e-12f), sb = 1.0f / fmaxf(sqrtf(nb), 1e-12f);
  const size_t plane = static_cast<size_t>(V) * Dp;
  float dot = 0.0f;
  for (int c = lane; c < Dp; c += 32) {
    const float x = c < D ? to_float(za[c]) * sa : 0.0f, y = c < D ? to_float(zb[c]) * sb : 0.0f;
    const bf16_t xh = __float2bfloat16_rn(x), yh = __float2bfloat16_rn(y);
    zhat[ia * Dp + c] = xh;
    zhat[ib * Dp + c] = yh;
    float xr = __bfloat162float(xh), yr = __bfloat162float(yh);
    if constexpr (PLANES == 2) {
      const bf16_t xl = __float2bfloat16_rn(x - xr), yl = __float2bfloat16_rn(y - yr);
      zhat[plane + ia * Dp + c] = xl;
      zhat[plane + ib * Dp + c] = yl;
      xr += __bfloat162float(xl);
      yr += __bfloat162float(yl);
    }
    dot = fmaf(xr, yr, dot);
  }
  dot = warp_sum(dot);
  if (lane == 0) {
    inv_norm[ia] = sa;
    inv_norm[ib] = sb;
    spos[ia] = dot;
    spos[ib] = dot;
    if (rk) {
      rk[ia] = expf(inv_tau - lse[ia]);
      rk[ib] = expf(inv_tau - lse[ib]);
    }
  }
}

// ------------------------------------------------------------ 2. the tiles
// See the header comment. Dynamic shared memory: Q [planes][Dp/64 or stages]
// [128 rows][128 B], then K [planes][stages][64 rows][128 B].
template <int PLANES, bool BWD, int NS, int QREG>
__global__ void __launch_bounds__(kThreads) ntxent_tiles_kernel(TileArgs a) {
  static_assert(QREG == 0 || (PLANES == 1 && !BWD && QREG <= 2), "Q fragments in registers: bf16 forward, Dp <= 128");
  using Cfg = TileCfg<PLANES, BWD, NS>;
  constexpr int kStages = Cfg::kStages, kPrefetch = Cfg::kPrefetch;
  SIMCLR_DYNAMIC_SHARED(unsigned char, smem);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int C = a.Dp / kKC;  // chunks per row
  const int64_t R = a.r1 - a.r0;
  const int64_t row_lo = a.r0 + static_cast<int64_t>(blockIdx.x) * kBM;
  const int split = blockIdx.y, slab = blockIdx.z;
  const int64_t T = (a.V + kBN - 1) / kBN;
  const int64_t t0 = T * split / a.ksplit, t1 = T * (split + 1) / a.ksplit;
  const int n_items = static_cast<int>((t1 - t0) * C);
  // chunk order inside a tile: the backward's slab chunks come last
  const int first = BWD ? (slab * NS + NS) % C : 0;
  const size_t plane = static_cast<size_t>(a.V) * a.Dp;
  constexpr uint32_t kQBytes = kBM * kRowBytes, kKBytes = kBN * kRowBytes;
  const uint32_t q_size = a.q_resident ? PLANES * C * kQBytes : PLANES * kStages * kQBytes;
  auto q_off = [&](int p, int idx) -> uint32_t {  // idx: chunk (resident) or ring stage
    return static_cast<uint32_t>((a.q_resident ? p * C + idx : p * kStages + idx)) * kQBytes;
  };
  auto k_off = [&](int p, int stage) -> uint32_t {
    return q_size + static_cast<uint32_t>(p * kStages + stage) * kKBytes;
  };
  // nrows rows from row0 (clamped to V-1: their results are masked or not
  // stored), feature chunk `chunk` of plane p, into the tile at byte dst.
  auto load_rows = [&](uint32_t dst, int nrows, int64_t row0, int p, int chunk) {
    const bf16_t* base = a.zhat + p * plane + static_cast<size_t>(chunk) * kKC;
    for (int i = tid; i < nrows * 8; i += kThreads) {
      const int r = i >> 3, c = i & 7;
      const int64_t row = min64(row0 + r, a.V - 1);
      cp_async_16(&smem[dst + swz(r, c)], base + row * a.Dp + c * 8);
    }
  };
  auto issue = [&](int j) {
    const int stage = j % kStages;
    const int64_t tile = t0 + j / C;
    const int chunk = (first + j % C) % C;
    for (int p = 0; p < PLANES; ++p) {
      load_rows(k_off(p, stage), kBN, tile * kBN, p, chunk);
      if (!a.q_resident) load_rows(q_off(p, stage), kBM, row_lo, p, chunk);
    }
  };

  // prologue: resident Q joins the first group
  if (a.q_resident)
    for (int p = 0; p < PLANES; ++p)
      for (int c = 0; c < C; ++c) load_rows(q_off(p, c), kBM, row_lo, p, c);
  for (int j = 0; j < kPrefetch; ++j) {
    if (j < n_items) issue(j);
    cp_async_commit();
  }

  float acc[2][8][4];                      // S tile: [m16 tile][n8 tile][C fragment]
  float rsum[2][2] = {}, rcomp[2][2] = {};  // forward: rows g and g+8 of each m16 tile
  float dq[BWD ? 2 : 1][BWD ? NS * 8 : 1][4];
  float ri[2][2];
  uint32_t qreg[QREG > 0 ? QREG : 1][4][2][4];  // [chunk][k16 step][m16 tile][A fragment], QREG > 0 only
  if constexpr (BWD) {
NTX_UNROLL
    for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
      for (int nt = 0; nt < NS * 8; ++nt)
NTX_UNROLL
        for (int i = 0; i < 4; ++i) dq[mt][nt][i] = 0.0f;
NTX_UNROLL
    for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
      for (int h = 0; h < 2; ++h)
        ri[mt][h] = a.rk[min64(row_lo + warp * 32 + mt * 16 + g + 8 * h, a.V - 1)];
  }

  for (int j = 0; j < n_items; ++j) {
    cp_async_wait<kPrefetch - 1>();  // item j (and everything before) has landed
    __syncthreads();                 // ... for every thread; and item j-kLag's slot is free
    if (j + kPrefetch < n_items) issue(j + kPrefetch);
    cp_async_commit();
    const int stage = j % kStages, cj = j % C;
    const int chunk = (first + cj) % C;
    if (cj == 0) {
NTX_UNROLL
      for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
        for (int nt = 0; nt < 8; ++nt)
NTX_UNROLL
          for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.0f;
    }
    // ---- S[32 x 64] += Q[32 x 64] K[64 x 64]^T for this chunk; get_q(kk, qa) supplies the
    // Q fragments of k16 step kk (from shared memory, or from registers when QREG > 0)
    auto s_chunk = [&](const auto& get_q) {
NTX_UNROLL
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t qa[PLANES][2][4];
        get_q(kk, qa);
NTX_UNROLL
        for (int np = 0; np < 4; ++np) {
          uint32_t kb[PLANES][4];
          const int key = np * 16 + (lane & 7) + ((lane >> 4) << 3);
NTX_UNROLL
          for (int p = 0; p < PLANES; ++p)
            ldmatrix_x4(kb[p], &smem[k_off(p, stage) + swz(key, kk * 2 + ((lane >> 3) & 1))]);
NTX_UNROLL
          for (int h = 0; h < 2; ++h) {
            const uint32_t bh[2] = {kb[0][2 * h], kb[0][2 * h + 1]};
NTX_UNROLL
            for (int mt = 0; mt < 2; ++mt) {
              float(&s)[4] = acc[mt][2 * np + h];
              mma_bf16_m16n8k16(s, qa[0][mt], bh, s);
              if constexpr (PLANES == 2) {
                const uint32_t bl[2] = {kb[1][2 * h], kb[1][2 * h + 1]};
                mma_bf16_m16n8k16(s, qa[0][mt], bl, s);
                mma_bf16_m16n8k16(s, qa[1][mt], bh, s);
              }
            }
          }
        }
      }
    };
    auto q_from_smem = [&](int kk, uint32_t(&qa)[PLANES][2][4]) {
      const int qidx = a.q_resident ? chunk : stage;
NTX_UNROLL
      for (int p = 0; p < PLANES; ++p)
NTX_UNROLL
        for (int mt = 0; mt < 2; ++mt)
          ldmatrix_x4(qa[p][mt], &smem[q_off(p, qidx) + swz(warp * 32 + mt * 16 + (lane & 15), kk * 2 + (lane >> 4))]);
    };
    if constexpr (QREG == 0) {
      s_chunk(q_from_smem);
    } else {
      if (j == 0) {  // the resident Q tile has landed: its fragments move to registers for good
NTX_UNROLL
        for (int c = 0; c < QREG; ++c)
NTX_UNROLL
          for (int kk = 0; kk < 4; ++kk)
NTX_UNROLL
            for (int mt = 0; mt < 2; ++mt)
              ldmatrix_x4(qreg[c][kk][mt], &smem[q_off(0, c) + swz(warp * 32 + mt * 16 + (lane & 15), kk * 2 + (lane >> 4))]);
      }
      auto q_reg = [&](auto c) {
        return [&, c](int kk, uint32_t(&qa)[PLANES][2][4]) {
NTX_UNROLL
          for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
            for (int i = 0; i < 4; ++i) qa[0][mt][i] = qreg[decltype(c)::value][kk][mt][i];
        };
      };
      if (chunk == 0)
        s_chunk(q_reg(std::integral_constant<int, 0>{}));
      else if constexpr (QREG > 1)
        s_chunk(q_reg(std::integral_constant<int, 1>{}));
    }
    if (cj != C - 1) continue;

    // ---- the tile's similarities are complete
    const int64_t kbase = (t0 + j / C) * kBN;
    const bool mask = kbase + kBN > a.V || (kbase < row_lo + kBM && kbase + kBN > row_lo);
    const int64_t wrow = row_lo + warp * 32 + g;  // + mt*16 + 8h
    if constexpr (!BWD) {
NTX_UNROLL
      for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
        for (int h = 0; h < 2; ++h) {
          float ts = 0.0f;
NTX_UNROLL
          for (int nt = 0; nt < 8; ++nt)
NTX_UNROLL
            for (int e = 0; e < 2; ++e) {
              float x = ex2(fmaf(acc[mt][nt][2 * h + e], a.c2, -a.c2));
              if (mask) {
                const int64_t key = kbase + nt * 8 + 2 * t4 + e;
                if (key == wrow + mt * 16 + 8 * h || key >= a.V) x = 0.0f;
              }
              ts += x;
            }
          // Kahan: rsum + ts, the lost low part kept in rcomp
          const float y = ts - rcomp[mt][h];
          const float s = rsum[mt][h] + y;
          rcomp[mt][h] = (s - rsum[mt][h]) - y;
          rsum[mt][h] = s;
        }
    } else {
      // G = E (r_j + r_k), packed into A fragments: k16 step q covers n8 tiles 2q, 2q+1
      float rkv[8][2];
NTX_UNROLL
      for (int nt = 0; nt < 8; ++nt) {
        const float2 v = *reinterpret_cast<const float2*>(a.rk + kbase + nt * 8 + 2 * t4);
        rkv[nt][0] = v.x;
        rkv[nt][1] = v.y;
      }
NTX_UNROLL
      for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
        for (int nt = 0; nt < 8; ++nt)
NTX_UNROLL
          for (int i = 0; i < 4; ++i) {
            const int h = i >> 1, e = i & 1;
            float x = ex2(fmaf(acc[mt][nt][i], a.c2, -a.c2));
            if (mask) {
              const int64_t key = kbase + nt * 8 + 2 * t4 + e;
              if (key == wrow + mt * 16 + 8 * h || key >= a.V) x = 0.0f;
            }
            acc[mt][nt][i] = x * (ri[mt][h] + rkv[nt][e]);
          }
      uint32_t ga[PLANES][2][4][4];
NTX_UNROLL
      for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
        for (int q = 0; q < 4; ++q) {
          const float* c0 = acc[mt][2 * q];
          const float* c1 = acc[mt][2 * q + 1];
          ga[0][mt][q][0] = pack_bf16x2(c0[0], c0[1]);
          ga[0][mt][q][1] = pack_bf16x2(c0[2], c0[3]);
          ga[0][mt][q][2] = pack_bf16x2(c1[0], c1[1]);
          ga[0][mt][q][3] = pack_bf16x2(c1[2], c1[3]);
          if constexpr (PLANES == 2) {
            ga[1][mt][q][0] = pack_bf16x2(c0[0] - bf16_round(c0[0]), c0[1] - bf16_round(c0[1]));
            ga[1][mt][q][1] = pack_bf16x2(c0[2] - bf16_round(c0[2]), c0[3] - bf16_round(c0[3]));
            ga[1][mt][q][2] = pack_bf16x2(c1[0] - bf16_round(c1[0]), c1[1] - bf16_round(c1[1]));
            ga[1][mt][q][3] = pack_bf16x2(c1[2] - bf16_round(c1[2]), c1[3] - bf16_round(c1[3]));
          }
        }
      // dẑ[32 x NS*64] += G[32 x 64] K_slab[64 x NS*64]; slab chunk u sits in item j-NS+1+u's slot
NTX_UNROLL
      for (int q = 0; q < 4; ++q)
NTX_UNROLL
        for (int u = 0; u < NS; ++u) {
          const int st = (j - NS + 1 + u) % kStages;
NTX_UNROLL
          for (int dp = 0; dp < 4; ++dp) {
            uint32_t kb[PLANES][4];
            const int key = q * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
NTX_UNROLL
            for (int p = 0; p < PLANES; ++p)
              ldmatrix_x4_trans(kb[p], &smem[k_off(p, st) + swz(key, dp * 2 + (lane >> 4))]);
NTX_UNROLL
            for (int h = 0; h < 2; ++h) {
              const uint32_t bh[2] = {kb[0][2 * h], kb[0][2 * h + 1]};
NTX_UNROLL
              for (int mt = 0; mt < 2; ++mt) {
                float(&d)[4] = dq[mt][u * 8 + dp * 2 + h];
                mma_bf16_m16n8k16(d, ga[0][mt][q], bh, d);
                if constexpr (PLANES == 2) {
                  const uint32_t bl[2] = {kb[1][2 * h], kb[1][2 * h + 1]};
                  mma_bf16_m16n8k16(d, ga[1][mt][q], bh, d);
                  mma_bf16_m16n8k16(d, ga[0][mt][q], bl, d);
                }
              }
            }
          }
        }
    }
  }
  cp_async_wait<0>();

  // ---- write this block's partials (rows past r1 were computed on clamped data: dropped)
  if constexpr (!BWD) {
NTX_UNROLL
    for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
      for (int h = 0; h < 2; ++h) {
        float s = rsum[mt][h];
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        const int64_t row = row_lo + warp * 32 + mt * 16 + g + 8 * h;
        if (t4 == 0 && row < a.r1) a.out[split * R + (row - a.r0)] = s;
      }
  } else {
NTX_UNROLL
    for (int mt = 0; mt < 2; ++mt)
NTX_UNROLL
      for (int h = 0; h < 2; ++h) {
        const int64_t row = row_lo + warp * 32 + mt * 16 + g + 8 * h;
        if (row >= a.r1) continue;
        float* dst = a.out + (static_cast<size_t>(split) * R + (row - a.r0)) * a.Dp + slab * NS * 64 + 2 * t4;
NTX_UNROLL
        for (int nt = 0; nt < NS * 8; ++nt)
          *reinterpret_cast<float2*>(dst + nt * 8) = make_float2(dq[mt][nt][2 * h], dq[mt][nt][2 * h + 1]);
      }
  }
}

// ------------------------------------------------------------ 3. finishing
// One block of 1024 threads: lse_i = 1/τ + log Σ_split partial, ℓ_i = lse_i - spos_i/τ,
// loss = Σ ℓ_i / V over the local rows (summed in double, fixed order).
__global__ void __launch_bounds__(1024)
    ntxent_finish_forward_kernel(float* loss, float* lse, const float* row_partial, const float* spos, int64_t V,
                                 int64_t r0, int64_t R, int ksplit, float inv_tau) {
  SIMCLR_SHARED(double, warp_tot, [32]);
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < R; i += blockDim.x) {
    float s = 0.0f;
    for (int k = 0; k < ksplit; ++k) s += row_partial[k * R + i];
    const float l = inv_tau + logf(s);
    lse[i] = l;
    acc += static_cast<double>(l - spos[r0 + i] * inv_tau);
  }
NTX_UNROLL
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) warp_tot[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    double v = lane < static_cast<int>(blockDim.x >> 5) ? static_cast<double>(warp_tot[lane]) : 0.0;
NTX_UNROLL
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) loss[0] = static_cast<float>(v / static_cast<double>(V));
  }
}

// One warp per local row j (8 per block):
//   dẑ_j = scale·(Σ_split part[s][j][:] - (zhat ? 2 ẑ_p(j) : 0)),  scale = dloss ? dloss[0]·inv_vtau : 1
//   dz_j += (dẑ_j - ẑ_j (ẑ_j·dẑ_j))·inv_norm_j     (dẑ_j·inv_norm_j when |z_j| <= eps)
// with ẑ_j recomputed in fp32 from z and ẑ_p from the workspace planes. part
// and zhat rows have stride pstride.
template <class T>
__global__ void __launch_bounds__(256)
    ntxent_finish_backward_kernel(T* dz, const float* part, int ksplit, int pstride, const T* z, const float* inv_norm,
                                  const bf16_t* zhat, int planes, const float* dloss, float inv_vtau, int64_t V,
                                  int D, int64_t r0, int64_t R) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (row >= R) return;  // whole warps
  const int64_t j = r0 + row, p = (j + V / 2) % V;
  const float scale = dloss ? dloss[0] * inv_vtau : 1.0f;
  const float inv_j = inv_norm[j];
  auto dzhat = [&](int c) {
    float s = 0.0f;
    for (int k = 0; k < ksplit; ++k) s += part[(static_cast<size_t>(k) * R + row) * pstride + c];
    if (zhat) {  // the same rounded ẑ_p the tensor cores multiplied G with: the ~2 ẑ_p of
                 // G_jp ẑ_p and this term cancel exactly when the positive dominates
      float zp = __bfloat162float(zhat[p * pstride + c]);
      if (planes == 2) zp += __bfloat162float(zhat[static_cast<size_t>(V) * pstride + p * pstride + c]);
      s -= 2.0f * zp;
    }
    return s * scale;
  };
  const bool tiny = inv_j >= 1.0f / 1e-12f;  // |z_j| <= eps (exactly the prepass value): ẑ = z/eps, no projection
  auto emit = [&](int c, float g_hat, float dot) {
    const float zh = to_float(z[j * D + c]) * inv_j;
    const float g = tiny ? g_hat * inv_j : (g_hat - zh * dot) * inv_j;
    T& out = dz[row * D + c];
    out = from_float<T>(to_float(out) + g);
  };
  float dot = 0.0f;
  constexpr int kCache = 8;  // rows with D <= 256 keep dẑ in registers: the partials are read once
  if (D <= 32 * kCache) {
    float cache[kCache];
NTX_UNROLL
    for (int u = 0; u < kCache; ++u) {
      const int c = lane + 32 * u;
      cache[u] = c < D ? dzhat(c) : 0.0f;
      if (c < D) dot = fmaf(to_float(z[j * D + c]) * inv_j, cache[u], dot);
    }
    dot = warp_sum(dot);
NTX_UNROLL
    for (int u = 0; u < kCache; ++u)
      if (lane + 32 * u < D) emit(lane + 32 * u, cache[u], dot);
  } else {
    for (int c = lane; c < D; c += 32) dot = fmaf(to_float(z[j * D + c]) * inv_j, dzhat(c), dot);
    dot = warp_sum(dot);
    for (int c = lane; c < D; c += 32) emit(c, dzhat(c), dot);
  }
}

// ------------------------------------------------------------ launchers
void check_args(const char* what, int64_t V, int64_t D, double tau, int64_t r0, int64_t r1, int ksplit) {
  SIMCLR_CHECK(V >= 2 && V % 2 == 0, what, ": the number of rows (views) must be even and >= 2, got ", V);
  SIMCLR_CHECK(D >= 1 && D <= (1 << 20), what, ": feature dimension must be in [1, 2^20], got ", D);
  SIMCLR_CHECK(V <= (int64_t{1} << 31), what, ": at most 2^31 rows, got ", V);
  SIMCLR_CHECK(tau >= kNtxentMinTau && tau <= 1e4, what, ": the fused kernel needs tau in [", kNtxentMinTau,
               ", 1e4], got ", tau);
  SIMCLR_CHECK(0 <= r0 && r0 <= r1 && r1 <= V, what, ": local rows [", r0, ", ", r1, ") outside [0, ", V, ")");
  SIMCLR_CHECK(ksplit >= 1, what, ": ksplit must be resolved (>= 1) first, got ", ksplit);
}

size_t tiles_smem_bytes(int planes, int stages, int C, bool q_resident) {
  const size_t q = static_cast<size_t>(planes) * (q_resident ? C : stages) * kBM * kRowBytes;
  return q + static_cast<size_t>(planes) * stages * kBN * kRowBytes;
}

template <int PLANES, bool BWD, int NS, int QREG = 0>
void launch_tiles(const TileArgs& a, int64_t R, int slabs, cudaStream_t st) {
  using Cfg = TileCfg<PLANES, BWD, NS>;
  const int C = a.Dp / kKC;
  SIMCLR_ASSERT(QREG == 0 || (a.q_resident && C == QREG));
  const size_t smem = tiles_smem_bytes(PLANES, Cfg::kStages, C, a.q_resident != 0);
  auto* kernel = ntxent_tiles_kernel<PLANES, BWD, NS, QREG>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>(ceil_div(R, kBM)), static_cast<unsigned>(a.ksplit),
                  static_cast<unsigned>(slabs));
  launch(kernel, grid, dim3(kThreads), smem, st, a);
}

template <class T>
constexpr int planes_of() {
  return std::is_same_v<T, float> ? 2 : 1;
}

template <class T>
void prepare(const NtxentWorkspace& w, unsigned char* ws, const T* z, const float* lse, int64_t V, int64_t D,
             double tau, cudaStream_t st) {
  constexpr int P = planes_of<T>();
  const int Dp = static_cast<int>(ntxent_padded_dim(D));
  const unsigned blocks = static_cast<unsigned>(ceil_div(V / 2, 8));
  launch(ntxent_prepare_kernel<T, P>, dim3(blocks), dim3(256), 0, st, reinterpret_cast<bf16_t*>(ws + w.zhat),
         reinterpret_cast<float*>(ws + w.inv_norm), reinterpret_cast<float*>(ws + w.spos),
         lse ? reinterpret_cast<float*>(ws + w.rk) : static_cast<float*>(nullptr), z, lse, V, static_cast<int>(D),
         Dp, static_cast<float>(1.0 / tau));
}

TileArgs tile_args(const NtxentWorkspace& w, unsigned char* ws, float* out, int planes, int64_t V, int64_t D,
                   double tau, int64_t r0, int64_t r1, int ksplit) {
  TileArgs a{};
  a.zhat = reinterpret_cast<const bf16_t*>(ws + w.zhat);
  a.rk = reinterpret_cast<const float*>(ws + w.rk);
  a.out = out;
  a.V = V;
  a.r0 = r0;
  a.r1 = r1;
  a.Dp = static_cast<int>(ntxent_padded_dim(D));
  a.ksplit = ksplit;
  a.c2 = static_cast<float>(1.4426950408889634 / tau);
  a.q_resident = planes * a.Dp <= 256;
  return a;
}

template <class T>
void forward_impl(float* loss, float* lse, const T* z, void* workspace, int64_t V, int64_t D, double tau, int64_t r0,
                  int64_t r1, int ksplit, void* stream) {
  check_args("ntxent_forward", V, D, tau, r0, r1, ksplit);
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int64_t R = r1 - r0;
  constexpr int P = planes_of<T>();
  const NtxentWorkspace w = ntxent_workspace_layout(V, D, R, P, ksplit);
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  prepare<T>(w, ws, z, nullptr, V, D, tau, st);
  if (R == 0) {
    CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), st));
    return;
  }
  float* part = reinterpret_cast<float*>(ws + w.row_partial);
  const TileArgs a = tile_args(w, ws, part, P, V, D, tau, r0, r1, ksplit);
  if (P == 1 && a.Dp == 64)
    launch_tiles<1, false, 1, 1>(a, R, 1, st);
  else if (P == 1 && a.Dp == 128)
    launch_tiles<1, false, 1, 2>(a, R, 1, st);
  else
    launch_tiles<P, false, 1>(a, R, 1, st);
  launch(ntxent_finish_forward_kernel, dim3(1), dim3(1024), 0, st, loss, lse, static_cast<const float*>(part),
         reinterpret_cast<const float*>(ws + w.spos), V, r0, R, ksplit, static_cast<float>(1.0 / tau));
}

template <class T>
void backward_impl(T* dz, const T* z, const float* lse, const float* dloss, void* workspace, int64_t V, int64_t D,
                   double tau, int64_t r0, int64_t r1, int ksplit, void* stream) {
  check_args("ntxent_backward", V, D, tau, r0, r1, ksplit);
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int64_t R = r1 - r0;
  if (R == 0) return;
  constexpr int P = planes_of<T>();
  const NtxentWorkspace w = ntxent_workspace_layout(V, D, R, P, ksplit);
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  prepare<T>(w, ws, z, lse, V, D, tau, st);
  float* part = reinterpret_cast<float*>(ws + w.grad_partial);
  const TileArgs a = tile_args(w, ws, part, P, V, D, tau, r0, r1, ksplit);
  if (P == 1 && a.Dp % 128 == 0)
    launch_tiles<1, true, 2>(a, R, a.Dp / 128, st);
  else
    launch_tiles<P, true, 1>(a, R, a.Dp / 64, st);
  const unsigned blocks = static_cast<unsigned>(ceil_div(R, 8));
  launch(ntxent_finish_backward_kernel<T>, dim3(blocks), dim3(256), 0, st, dz,
         static_cast<const float*>(part), ksplit, a.Dp, z, reinterpret_cast<const float*>(ws + w.inv_norm),
         a.zhat, P, dloss, static_cast<float>(1.0 / (static_cast<double>(V) * tau)), V, static_cast<int>(D), r0, R);
}

}  // namespace

int ntxent_resolve_ksplit(int ksplit, int64_t V, int64_t R) {
  const int64_t T = ceil_div(std::max<int64_t>(V, 1), kBN);
  if (ksplit > 0) return static_cast<int>(std::min<int64_t>(ksplit, T));
  int dev = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  // Fill the device in whole waves. The backward (the larger cost) keeps two
  // blocks per SM, so `slots` blocks run at once; time ~ waves x (work per
  // block ~ 1/ks), plus 1% per split for the partial sums. Each split keeps
  // >= 4 key tiles.
  const int64_t slots = 2 * static_cast<int64_t>(sms);
  const int64_t row_blocks = std::max<int64_t>(1, ceil_div(R, kBM));
  const int64_t kmax = std::max<int64_t>(1, std::min<int64_t>(T / 4, 64));
  int64_t best = 1;
  double best_cost = 1e300;
  for (int64_t ks = 1; ks <= kmax; ++ks) {
    const double cost = static_cast<double>(ceil_div(row_blocks * ks, slots)) / static_cast<double>(ks) * (1.0 + 0.01 * ks);
    if (cost < best_cost - 1e-12) {
      best_cost = cost;
      best = ks;
    }
  }
  return static_cast<int>(best);
}

size_t ntxent_workspace_bytes(int64_t V, int64_t D, int64_t R, bool fp32_input, int ksplit) {
  return ntxent_workspace_layout(V, D, R, fp32_input ? 2 : 1, std::max(ksplit, 1)).total;
}

void ntxent_forward(float* loss, float* lse, const float* z, void* workspace, int64_t V, int64_t D, double tau,
                    int64_t r0, int64_t r1, int ksplit, void* stream) {
  forward_impl<float>(loss, lse, z, workspace, V, D, tau, r0, r1, ksplit, stream);
}
void ntxent_forward(float* loss, float* lse, const ::simclr::bf16* z, void* workspace, int64_t V, int64_t D,
                    double tau, int64_t r0, int64_t r1, int ksplit, void* stream) {
  forward_impl<bf16_t>(loss, lse, reinterpret_cast<const bf16_t*>(z), workspace, V, D, tau, r0, r1, ksplit, stream);
}
void ntxent_backward(float* dz, const float* z, const float* lse, const float* dloss, void* workspace, int64_t V,
                     int64_t D, double tau, int64_t r0, int64_t r1, int ksplit, void* stream) {
  backward_impl<float>(dz, z, lse, dloss, workspace, V, D, tau, r0, r1, ksplit, stream);
}
void ntxent_backward(::simclr::bf16* dz, const ::simclr::bf16* z, const float* lse, const float* dloss,
                     void* workspace, int64_t V, int64_t D, double tau, int64_t r0, int64_t r1, int ksplit,
                     void* stream) {
  backward_impl<bf16_t>(reinterpret_cast<bf16_t*>(dz), reinterpret_cast<const bf16_t*>(z), lse, dloss, workspace, V,
                        D, tau, r0, r1, ksplit, stream);
}

// ============================================================ the unfused baseline
// What a framework does, done well: normalise, one cuBLAS GEMM for the full
// S = ẑẑᵀ [V,V] in fp32, a masked softmax/cross-entropy kernel per row; the
// backward forms dS = dloss/(Vτ)·(P - onehot(p)) as a V×V matrix (bf16 for bf16
// input, in place in S for fp32) and two cuBLAS GEMMs dẑᵀ = ẑᵀ dSᵀ + ẑᵀ dS.
// Memory O(V²). For bench_ntxent's comparison. Under the emulator the cuBLAS
// calls become a plain column-major loop with cuBLAS's argument conventions,
// so the kernels and the GEMM layouts are tested in CI too.
namespace {

struct UnfusedLayout {
  size_t zn = 0, inv_norm = 0, row_loss = 0, S = 0, dS = 0, dzn = 0, total = 0;
};
UnfusedLayout unfused_layout(int64_t V, int64_t D, bool f32) {
  auto up = [](size_t b) { return (b + 255) / 256 * 256; };
  const size_t v = static_cast<size_t>(V), d = static_cast<size_t>(D);
  UnfusedLayout w;
  w.inv_norm = up(v * d * (f32 ? 4 : 2));
  w.row_loss = w.inv_norm + up(v * 4);
  w.S = w.row_loss + up(v * 4);
  w.dS = w.S + up(v * v * 4);
  w.dzn = w.dS + (f32 ? 0 : up(v * v * 2));
  w.total = w.dzn + up(v * d * 4);
  return w;
}

// zn[V,D] = z / max(|z|, eps) in z's dtype, inv_norm[V]; one warp per row.
template <class T>
__global__ void __launch_bounds__(256)
    unfused_normalize_kernel(T* zn, float* inv_norm, const T* z, int64_t V, int D) {
  const int lane = threadIdx.x & 31;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * 8 + (threadIdx.x >> 5);
  if (i >= V) return;
  float n = 0.0f;
  for (int c = lane; c < D; c += 32) n = fmaf(to_float(z[i * D + c]), to_float(z[i * D + c]), n);
  n = warp_sum(n);
  const float inv = 1.0f / fmaxf(sqrtf(n), 1e-12f);
  for (int c = lane; c < D; c += 32) zn[i * D + c] = from_float<T>(to_float(z[i * D + c]) * inv);
  if (lane == 0) inv_norm[i] = inv;
}

__device__ float block_reduce_256(float v, bool is_max, float* red) {
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, w) : v + w;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
  for (int k = 1; k < 8; ++k) v = is_max ? fmaxf(v, red[k]) : v + red[k];
  return v;
}

// One block of 256 per row of S: lse_i = log Σ_{k≠i} exp(S_ik/τ) (max subtracted), ℓ_i = lse_i - S_ip/τ.
__global__ void __launch_bounds__(256)
    unfused_softmax_kernel(float* lse, float* row_loss, const float* S, int64_t V, float inv_tau) {
  __shared__ float red[8];
  const int64_t i = blockIdx.x;
  const float* s = S + i * V;
  float m = -INFINITY;
  for (int64_t k = threadIdx.x; k < V; k += 256)
    if (k != i) m = fmaxf(m, s[k] * inv_tau);
  m = block_reduce_256(m, true, red);
  float sum = 0.0f;
  for (int64_t k = threadIdx.x; k < V; k += 256)
    if (k != i) sum += expf(s[k] * inv_tau - m);
  sum = block_reduce_256(sum, false, red);
  if (threadIdx.x == 0) {
    const float l = m + logf(sum);
    lse[i] = l;
    row_loss[i] = l - s[(i + V / 2) % V] * inv_tau;
  }
}

__global__ void __launch_bounds__(1024) unfused_loss_kernel(float* loss, const float* row_loss, int64_t V) {
  __shared__ double red[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) acc += row_loss[i];
  for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int k = 0; k < static_cast<int>(blockDim.x >> 5); ++k) t += red[k];
    loss[0] = static_cast<float>(t / static_cast<double>(V));
  }
}

// dS_ik = dloss/(Vτ)·(exp(S_ik/τ - lse_i)·[k≠i] - [k = p(i)])  (OUT = float may alias S)
template <class OUT>
__global__ void __launch_bounds__(256)
    unfused_dlogits_kernel(OUT* dS, const float* S, const float* lse, const float* dloss, int64_t V, float inv_tau,
                           float inv_vtau) {
  const float c = dloss[0] * inv_vtau;
  const int64_t n = V * V;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / V, k = idx - i * V;
    float v = k == i ? 0.0f : expf(S[idx] * inv_tau - lse[i]);
    if (k == (i + V / 2) % V) v -= 1.0f;
    dS[idx] = from_float<OUT>(c * v);
  }
}

#ifndef SIMCLR_EMU
#define CUBLAS_OK(call)                                                                                  \
  do {                                                                                                   \
    const cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                                     \
      ::simclr::fail("cuBLAS error ", cublasGetStatusName(s_), " in ", #call, " (", __FILE__, ":", __LINE__, ")"); \
  } while (0)

cublasHandle_t cublas_handle(cudaStream_t st) {
  static std::mutex mu;
  static cublasHandle_t handles[64] = {};
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  SIMCLR_CHECK(dev >= 0 && dev < 64, "device ", dev, " out of range");
  std::lock_guard<std::mutex> lock(mu);
  if (!handles[dev]) CUBLAS_OK(cublasCreate(&handles[dev]));
  CUBLAS_OK(cublasSetStream(handles[dev], st));
  return handles[dev];
}
#endif

// C[m,n] = op(A)[m,k] op(B)[k,n] + beta C, column-major, A and B of type T,
// fp32 accumulation and output (cublasGemmEx, CUBLAS_COMPUTE_32F: no TF32).
template <class T>
void gemm_f32(bool ta, bool tb, int m, int n, int k, const T* A, int lda, const T* B, int ldb, float beta, float* C,
              int ldc, cudaStream_t st) {
#ifndef SIMCLR_EMU
  const cudaDataType_t t = std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;
  const float one = 1.0f;
  CUBLAS_OK(cublasGemmEx(cublas_handle(st), ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                         &one, A, t, lda, B, t, ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT));
#else
  (void)st;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int l = 0; l < k; ++l) {
        const float a = to_float(ta ? A[l + static_cast<size_t>(i) * lda] : A[i + static_cast<size_t>(l) * lda]);
        const float b = to_float(tb ? B[j + static_cast<size_t>(l) * ldb] : B[l + static_cast<size_t>(j) * ldb]);
        acc = fmaf(a, b, acc);
      }
      float& c = C[i + static_cast<size_t>(j) * ldc];
      c = beta == 0.0f ? acc : acc + beta * c;
    }
#endif
}

template <class T>
void unfused_forward_impl(float* loss, float* lse, const T* z, void* workspace, int64_t V, int64_t D, double tau,
                          cudaStream_t st) {
  check_args("ntxent_unfused_forward", V, D, tau, 0, V, 1);
  const UnfusedLayout w = unfused_layout(V, D, std::is_same_v<T, float>);
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  T* zn = reinterpret_cast<T*>(ws + w.zn);
  float* S = reinterpret_cast<float*>(ws + w.S);
  launch(unfused_normalize_kernel<T>, dim3(static_cast<unsigned>(ceil_div(V, 8))), dim3(256), 0, st, zn,
         reinterpret_cast<float*>(ws + w.inv_norm), z, V, static_cast<int>(D));
  // column-major: S[V,V] = Aᵀ A, A = the row-major ẑ read column-major ([D,V], lda D); S is symmetric
  gemm_f32<T>(true, false, static_cast<int>(V), static_cast<int>(V), static_cast<int>(D), zn, static_cast<int>(D), zn,
              static_cast<int>(D), 0.0f, S, static_cast<int>(V), st);
  float* row_loss = reinterpret_cast<float*>(ws + w.row_loss);
  launch(unfused_softmax_kernel, dim3(static_cast<unsigned>(V)), dim3(256), 0, st, lse, row_loss,
         static_cast<const float*>(S), V, static_cast<float>(1.0 / tau));
  launch(unfused_loss_kernel, dim3(1), dim3(1024), 0, st, loss, static_cast<const float*>(row_loss), V);
}

template <class T>
void unfused_backward_impl(T* dz, const T* z, const float* lse, const float* dloss, void* workspace, int64_t V,
                           int64_t D, double tau, cudaStream_t st) {
  check_args("ntxent_unfused_backward", V, D, tau, 0, V, 1);
  constexpr bool f32 = std::is_same_v<T, float>;
  const UnfusedLayout w = unfused_layout(V, D, f32);
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  const T* zn = reinterpret_cast<const T*>(ws + w.zn);
  float* S = reinterpret_cast<float*>(ws + w.S);
  T* dS = f32 ? reinterpret_cast<T*>(S) : reinterpret_cast<T*>(ws + w.dS);
  float* dzn = reinterpret_cast<float*>(ws + w.dzn);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(ceil_div(V * V, 256), 65536));
  launch(unfused_dlogits_kernel<T>, dim3(blocks), dim3(256), 0, st, dS, static_cast<const float*>(S), lse, dloss, V,
         static_cast<float>(1.0 / tau), static_cast<float>(1.0 / (static_cast<double>(V) * tau)));
  const int v = static_cast<int>(V), d = static_cast<int>(D);
  // column-major: dẑᵀ[D,V] = ẑᵀ[D,V]·M + ẑᵀ·Mᵀ, M = the row-major dS read column-major (= dSᵀ)
  gemm_f32<T>(false, false, d, v, v, zn, d, dS, v, 0.0f, dzn, d, st);
  gemm_f32<T>(false, true, d, v, v, zn, d, dS, v, 1.0f, dzn, d, st);
  launch(ntxent_finish_backward_kernel<T>, dim3(static_cast<unsigned>(ceil_div(V, 8))), dim3(256), 0, st, dz,
         static_cast<const float*>(dzn), 1, d, z, reinterpret_cast<const float*>(ws + w.inv_norm),
         static_cast<const bf16_t*>(nullptr), 0, static_cast<const float*>(nullptr), 1.0f, V, d, int64_t{0}, V);
}

}  // namespace

size_t ntxent_unfused_workspace_bytes(int64_t V, int64_t D, bool fp32_input) {
  return unfused_layout(V, D, fp32_input).total;
}
void ntxent_unfused_forward(float* loss, float* lse, const float* z, void* workspace, int64_t V, int64_t D, double tau,
                            void* stream) {
  unfused_forward_impl<float>(loss, lse, z, workspace, V, D, tau, static_cast<cudaStream_t>(stream));
}
void ntxent_unfused_forward(float* loss, float* lse, const ::simclr::bf16* z, void* workspace, int64_t V, int64_t D,
                            double tau, void* stream) {
  unfused_forward_impl<bf16_t>(loss, lse, reinterpret_cast<const bf16_t*>(z), workspace, V, D, tau,
                               static_cast<cudaStream_t>(stream));
}
void ntxent_unfused_backward(float* dz, const float* z, const float* lse, const float* dloss, void* workspace,
                             int64_t V, int64_t D, double tau, void* stream) {
  unfused_backward_impl<float>(dz, z, lse, dloss, workspace, V, D, tau, static_cast<cudaStream_t>(stream));
}
void ntxent_unfused_backward(::simclr::bf16* dz, const ::simclr::bf16* z, const float* lse, const float* dloss,
                             void* workspace, int64_t V, int64_t D, double tau, void* stream) {
  unfused_backward_impl<bf16_t>(reinterpret_cast<bf16_t*>(dz), reinterpret_cast<const bf16_t*>(z), lse, dloss,
                                workspace, V, D, tau, static_cast<cudaStream_t>(stream));
}

}  // namespace simclr::SIMCLR_KNS
