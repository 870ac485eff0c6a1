// kernels/cpu/ntxent_fast.cpp - the fast fp32 CPU path of NT-Xent
// (kernels/cpu/ntxent_fast.h): the flash-style algorithm of the CUDA kernels
// (kernels/cuda/ntxent.cu) on OpenBLAS tiles, never the whole V×V matrix.
//
// Shape legend: V rows = 2N views, D features, R = r1 - r0 local rows,
// B rows/keys per tile (NtxentFastOptions::block).
//
// The maths (kernels/ntxent.h): with ẑ = z / max(|z|, eps) every |s| <= 1, so
// the softmax shift is the a-priori bound 1/τ (as the CUDA kernels): per tile
//   E_jk = exp((s_jk - 1)/τ) = exp2(a·s_jk - a),  a = log2(e)/τ,
// in (0, 1] and a normal float for τ >= kNtxentMinTau (>= e^-80), so no
// running max is needed and the row sums need no rescaling:
//   lse_j = 1/τ + log Σ_{k≠j} E_jk.
// Backward, with α_k = exp(1/τ - lse_k) (V floats, from the given lse):
//   P_jk + P_kj = E_jk (α_j + α_k) =: W_jk,   dẑ_j = c [Σ_k W_jk ẑ_k - 2 ẑ_p(j)],
// c = dloss/(Vτ), then back through the normalisation as the reference.
//
// Symmetry: s and W are symmetric, so a tile (I, J) of two LOCAL blocks
// serves both: forward, its row sums go to the rows of I and its column sums
// to the rows of J; backward, dẑ_I += W ẑ_J and dẑ_J += Wᵀ ẑ_I. Only I <= J
// is computed (half the similarity GEMMs and exponentials); a local block
// against a remote block (rows outside [r0, r1), the distributed form) is
// one-sided (row side only). Diagonal tiles (I = J) zero E_jj and use their
// row side only.
//
// Work split and determinism: the tiles, in a fixed order, go round-robin to
// kNtxentFastWorkers virtual workers; each worker has its own accumulators
// (forward R doubles, backward R×D floats) filled in its tile order, and the
// workers' accumulators are summed in worker order. Threads run whole
// workers (OpenBLAS runs single-threaded inside the parallel region), so the
// results are bitwise the same for any thread count (tests/test_ntxent_fast.cpp
// asserts it for 1 and 2 threads). Memory: ẑ [V,D] f32, |z| [V], α [V],
// workers × R×D f32, one B×B tile per thread: O(V·D), never O(V²).
//
// The exponential: exp2 by a degree-6 polynomial on [-0.5, 0.5] (the
// coefficients of Cephes' exp2f) times 2^n built in the exponent bits;
// measured max relative error over [-126, 1]: 7.7e-8 (AVX2, FMA) and 9.5e-8
// (portable), i.e. within 1.6·2^-24, about 1-2 ulp of float
// (tests/test_ntxent_fast.cpp bounds it by 2e-7). AVX2+FMA (8 lanes,
// __attribute__((target)), chosen at run time by __builtin_cpu_supports) or
// the same polynomial in portable scalar code.
#include "kernels/cpu/ntxent_fast.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SIMCLR_NTXENT_X86 1
#endif

#include "engine/blas.h"
#include "engine/check.h"

namespace simclr::cpu {

namespace {

constexpr double kLog2e = 1.4426950408889634;

// 2^f ≈ 1 + f·P(f) on [-0.5, 0.5] (Cephes exp2f).
constexpr float kP0 = 1.535336188319500e-4f, kP1 = 1.339887440266574e-3f, kP2 = 9.618437357674640e-3f,
                kP3 = 5.550332471162809e-2f, kP4 = 2.402264791363012e-1f, kP5 = 6.931472028550421e-1f;

inline float exp2_scalar(float x) {
  x = std::min(std::max(x, -126.0f), 127.0f);
  const float n = std::nearbyint(x);  // round to nearest (the default mode)
  const float f = x - n;
  float p = kP0;
  p = p * f + kP1;
  p = p * f + kP2;
  p = p * f + kP3;
  p = p * f + kP4;
  p = p * f + kP5;
  p = p * f + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// ---- the per-row tile loops, portable
// Forward: s[0,n) := exp2(s + b), s[diag] := 0 (diag < 0: none); col[c] += s[c]
// when col; returns the row sum.
float fwd_row_scalar(float* s, int64_t n, float b, int64_t diag, float* col) {
  for (int64_t c = 0; c < n; c++) s[c] = exp2_scalar(s[c] + b);
  if (diag >= 0) s[diag] = 0.0f;
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int l = 0; l < 8; l++) acc[l] += s[c + l];
  float tail = 0;
  for (; c < n; c++) tail += s[c];
  if (col)
    for (int64_t k = 0; k < n; k++) col[k] += s[k];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

// Backward: s[0,n) := exp2(s + b) · (alpha_r + alpha_c[c]), s[diag] := 0.
void bwd_row_scalar(float* s, int64_t n, float b, float alpha_r, const float* alpha_c, int64_t diag) {
  for (int64_t c = 0; c < n; c++) s[c] = exp2_scalar(s[c] + b) * (alpha_r + alpha_c[c]);
  if (diag >= 0) s[diag] = 0.0f;
}

#ifdef SIMCLR_NTXENT_X86
// ---- the same loops, AVX2 + FMA
__attribute__((target("avx2,fma"))) inline __m256 exp2_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-126.0f)), _mm256_set1_ps(127.0f));
  const __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(x, n);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"))) float fwd_row_avx2(float* s, int64_t n, float b, int64_t diag, float* col) {
  const __m256 vb = _mm256_set1_ps(b);
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) _mm256_storeu_ps(s + c, exp2_avx2(_mm256_add_ps(_mm256_loadu_ps(s + c), vb)));
  for (; c < n; c++) s[c] = exp2_scalar(s[c] + b);
  if (diag >= 0) s[diag] = 0.0f;
  __m256 acc = _mm256_setzero_ps();
  c = 0;
  if (col) {
    for (; c + 8 <= n; c += 8) {
      const __m256 v = _mm256_loadu_ps(s + c);
      acc = _mm256_add_ps(acc, v);
      _mm256_storeu_ps(col + c, _mm256_add_ps(_mm256_loadu_ps(col + c), v));
    }
  } else {
    for (; c + 8 <= n; c += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(s + c));
  }
  float tail = 0;
  for (; c < n; c++) {
    tail += s[c];
    if (col) col[c] += s[c];
  }
  alignas(32) float l[8];
  _mm256_store_ps(l, acc);
  return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])) + tail;
}

__attribute__((target("avx2,fma"))) void bwd_row_avx2(float* s, int64_t n, float b, float alpha_r,
                                                      const float* alpha_c, int64_t diag) {
  const __m256 vb = _mm256_set1_ps(b), va = _mm256_set1_ps(alpha_r);
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 e = exp2_avx2(_mm256_add_ps(_mm256_loadu_ps(s + c), vb));
    _mm256_storeu_ps(s + c, _mm256_mul_ps(e, _mm256_add_ps(va, _mm256_loadu_ps(alpha_c + c))));
  }
  for (; c < n; c++) s[c] = exp2_scalar(s[c] + b) * (alpha_r + alpha_c[c]);
  if (diag >= 0) s[diag] = 0.0f;
}

__attribute__((target("avx2,fma"))) void exp2_span_avx2(float* x, int64_t n) {
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) _mm256_storeu_ps(x + c, exp2_avx2(_mm256_loadu_ps(x + c)));
  for (; c < n; c++) x[c] = exp2_scalar(x[c]);
}

bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#else
bool cpu_has_avx2() { return false; }
#endif

struct RowKernels {
  float (*fwd)(float*, int64_t, float, int64_t, float*);
  void (*bwd)(float*, int64_t, float, float, const float*, int64_t);
};

RowKernels row_kernels(bool scalar) {
#ifdef SIMCLR_NTXENT_X86
  if (!scalar && cpu_has_avx2()) return {&fwd_row_avx2, &bwd_row_avx2};
#endif
  (void)scalar;
  return {&fwd_row_scalar, &bwd_row_scalar};
}

void check_args(const char* what, int64_t V, int64_t D, double tau, int64_t r0, int64_t r1,
                const NtxentFastOptions& opt) {
  SIMCLR_CHECK(V >= 2 && V % 2 == 0, what, ": the number of rows (views) must be even and >= 2, got ", V);
  SIMCLR_CHECK(D >= 1, what, ": feature dimension must be >= 1, got ", D);
  SIMCLR_CHECK(std::isfinite(tau) && tau >= kNtxentMinTau, what, ": the fast path needs tau >= ", kNtxentMinTau,
               ", got ", tau);
  SIMCLR_CHECK(0 <= r0 && r0 <= r1 && r1 <= V, what, ": local rows [", r0, ", ", r1, ") outside [0, ", V, ")");
  SIMCLR_CHECK(opt.block >= 1 && opt.threads >= 0, what, ": bad options (block ", opt.block, ", threads ",
               opt.threads, ")");
}

int thread_count(const NtxentFastOptions& opt) {
  const int t = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  return std::max(1, std::min(t, kNtxentFastWorkers));
}

// ẑ (f32) and |z| (double) of all V rows.
void normalise(std::vector<float>& zhat, std::vector<double>& norm, const float* z, int64_t V, int64_t D, int nt) {
  zhat.resize(static_cast<size_t>(V * D));
  norm.resize(static_cast<size_t>(V));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < V; i++) {
    const float* zi = z + i * D;
    double s = 0;
    for (int64_t c = 0; c < D; c++) s += static_cast<double>(zi[c]) * static_cast<double>(zi[c]);
    norm[i] = std::sqrt(s);
    const double inv = 1.0 / std::max(norm[i], kNtxentEps);
    for (int64_t c = 0; c < D; c++) zhat[i * D + c] = static_cast<float>(static_cast<double>(zi[c]) * inv);
  }
}

struct Block {
  int64_t b, e;
  bool local;
};
struct Tile {
  int64_t i0, i1, j0, j1;  // query rows [i0, i1) (local), keys [j0, j1)
  bool sym, diag;          // sym: keys local too (both sides served); diag: the same block
};

// The tiles of the local rows [r0, r1) against all V keys, in their fixed order.
std::vector<Tile> make_tiles(int64_t V, int64_t r0, int64_t r1, int64_t B) {
  std::vector<Block> blocks;
  auto cut = [&](int64_t a, int64_t e, bool local) {
    for (int64_t b = a; b < e; b += B) blocks.push_back({b, std::min(e, b + B), local});
  };
  cut(0, r0, false);
  cut(r0, r1, true);
  cut(r1, V, false);
  std::vector<Tile> tiles;
  for (size_t I = 0; I < blocks.size(); I++) {
    if (!blocks[I].local) continue;
    for (size_t J = 0; J < blocks.size(); J++) {
      if (blocks[J].local && J < I) continue;  // served by tile (J, I)
      tiles.push_back({blocks[I].b, blocks[I].e, blocks[J].b, blocks[J].e, blocks[J].local, I == J});
    }
  }
  return tiles;
}

}  // namespace

bool ntxent_fast_eligible(int64_t V, double tau) { return V >= kNtxentFastMinRows && tau >= kNtxentMinTau; }

bool ntxent_fast_has_avx2() { return cpu_has_avx2(); }

void ntxent_fast_exp2(float* x, int64_t n, bool simd) {
#ifdef SIMCLR_NTXENT_X86
  if (simd && cpu_has_avx2()) return exp2_span_avx2(x, n);
#endif
  (void)simd;
  for (int64_t i = 0; i < n; i++) x[i] = exp2_scalar(x[i]);
}

size_t ntxent_fast_extra_bytes(int64_t V, int64_t D, int64_t R, const NtxentFastOptions& opt) {
  const size_t W = kNtxentFastWorkers, B = static_cast<size_t>(std::min<int64_t>(opt.block, V));
  const size_t common = static_cast<size_t>(V * D) * 4 + static_cast<size_t>(V) * 8 +
                        static_cast<size_t>(thread_count(opt)) * (B * B + B) * 4;
  const size_t fwd = common + W * static_cast<size_t>(R) * 8 + static_cast<size_t>(R) * 8;
  const size_t bwd = common + static_cast<size_t>(V) * 4 + W * static_cast<size_t>(R * D) * 4;
  return std::max(fwd, bwd);
}

void ntxent_fast_forward(float* row_loss, float* lse, const float* z, int64_t V, int64_t D, double tau, int64_t r0,
                         int64_t r1, const NtxentFastOptions& opt) {
  check_args("ntxent_fast_forward", V, D, tau, r0, r1, opt);
  const int64_t R = r1 - r0, N = V / 2, B = opt.block;
  if (R == 0) return;
  const int nt = thread_count(opt);
  const RowKernels rk = row_kernels(opt.scalar);
  std::vector<float> zhat;
  std::vector<double> norm;
  normalise(zhat, norm, z, V, D, nt);
  const std::vector<Tile> tiles = make_tiles(V, r0, r1, B);
  constexpr int W = kNtxentFastWorkers;
  std::vector<double> acc(static_cast<size_t>(W * R), 0.0);  // [worker][local row] Σ E
  const float a = static_cast<float>(kLog2e / tau), b = -a;
  const float* zh = zhat.data();
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> S(static_cast<size_t>(B * B)), col(static_cast<size_t>(B));
#pragma omp for schedule(static, 1)
    for (int w = 0; w < W; w++) {
      double* aw = acc.data() + w * R;
      for (size_t t = w; t < tiles.size(); t += W) {
        const Tile& tl = tiles[t];
        const int64_t bi = tl.i1 - tl.i0, bj = tl.j1 - tl.j0;
        gemm<float>(false, true, bi, bj, D, a, zh + tl.i0 * D, D, zh + tl.j0 * D, D, 0.0f, S.data(), bj);
        const bool colside = tl.sym && !tl.diag;
        if (colside) std::fill(col.begin(), col.begin() + bj, 0.0f);
        for (int64_t r = 0; r < bi; r++)
          aw[tl.i0 - r0 + r] += rk.fwd(S.data() + r * bj, bj, b, tl.diag ? r : -1, colside ? col.data() : nullptr);
        if (colside)
          for (int64_t c = 0; c < bj; c++) aw[tl.j0 - r0 + c] += col[c];
      }
    }
  }
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < R; i++) {
    double sum = 0;
    for (int w = 0; w < W; w++) sum += acc[w * R + i];
    const double l = 1.0 / tau + std::log(sum);
    const int64_t g = r0 + i, p = (g + N) % V;
    double sp = 0;
    for (int64_t c = 0; c < D; c++) sp += static_cast<double>(zh[g * D + c]) * static_cast<double>(zh[p * D + c]);
    if (lse) lse[i] = static_cast<float>(l);
    if (row_loss) row_loss[i] = static_cast<float>(l - sp / tau);
  }
}

void ntxent_fast_backward(float* dz, const float* z, const float* lse, double dloss, int64_t V, int64_t D, double tau,
                          int64_t r0, int64_t r1, const NtxentFastOptions& opt) {
  check_args("ntxent_fast_backward", V, D, tau, r0, r1, opt);
  const int64_t R = r1 - r0, N = V / 2, B = opt.block;
  if (R == 0) return;
  const int nt = thread_count(opt);
  const RowKernels rk = row_kernels(opt.scalar);
  std::vector<float> zhat;
  std::vector<double> norm;
  normalise(zhat, norm, z, V, D, nt);
  std::vector<float> alpha(static_cast<size_t>(V));  // exp(1/τ - lse_k)
  for (int64_t k = 0; k < V; k++) alpha[k] = static_cast<float>(std::exp(1.0 / tau - static_cast<double>(lse[k])));
  const std::vector<Tile> tiles = make_tiles(V, r0, r1, B);
  constexpr int W = kNtxentFastWorkers;
  std::vector<float> G(static_cast<size_t>(W * R * D));  // [worker][local row][D] Σ_k W_jk ẑ_k
  const float a = static_cast<float>(kLog2e / tau), b = -a;
  const float* zh = zhat.data();
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> S(static_cast<size_t>(B * B));
#pragma omp for schedule(static, 1)
    for (int w = 0; w < W; w++) {
      float* gw = G.data() + w * R * D;
      std::fill(gw, gw + R * D, 0.0f);
      for (size_t t = w; t < tiles.size(); t += W) {
        const Tile& tl = tiles[t];
        const int64_t bi = tl.i1 - tl.i0, bj = tl.j1 - tl.j0;
        gemm<float>(false, true, bi, bj, D, a, zh + tl.i0 * D, D, zh + tl.j0 * D, D, 0.0f, S.data(), bj);
        for (int64_t r = 0; r < bi; r++)
          rk.bwd(S.data() + r * bj, bj, b, alpha[tl.i0 + r], alpha.data() + tl.j0, tl.diag ? r : -1);
        // dẑ_I += W ẑ_J; the key side dẑ_J += Wᵀ ẑ_I when J is local too (not the diagonal tile)
        gemm<float>(false, false, bi, D, bj, 1.0f, S.data(), bj, zh + tl.j0 * D, D, 1.0f, gw + (tl.i0 - r0) * D, D);
        if (tl.sym && !tl.diag)
          gemm<float>(true, false, bj, D, bi, 1.0f, S.data(), bj, zh + tl.i0 * D, D, 1.0f, gw + (tl.j0 - r0) * D,
                      D);
      }
    }
  }
  const double cst = dloss / (static_cast<double>(V) * tau);
#pragma omp parallel num_threads(nt)
  {
    std::vector<double> g(static_cast<size_t>(D));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < R; i++) {
      const int64_t j = r0 + i, p = (j + N) % V;
      for (int64_t c = 0; c < D; c++) {
        double s = 0;
        for (int w = 0; w < W; w++) s += static_cast<double>(G[(w * R + i) * D + c]);
        g[c] = cst * (s - 2.0 * static_cast<double>(zh[p * D + c]));
      }
      const float* zj = zh + j * D;
      float* out = dz + i * D;
      if (norm[j] > kNtxentEps) {
        double dot = 0;
        for (int64_t c = 0; c < D; c++) dot += static_cast<double>(zj[c]) * g[c];
        for (int64_t c = 0; c < D; c++)
          out[c] = static_cast<float>(static_cast<double>(out[c]) +
                                      (g[c] - static_cast<double>(zj[c]) * dot) / norm[j]);
      } else {
        for (int64_t c = 0; c < D; c++) out[c] = static_cast<float>(static_cast<double>(out[c]) + g[c] / kNtxentEps);
      }
    }
  }
}

namespace {
// The op's choice: the fast path where eligible, unless SIMCLR_CPU_NTXENT=reference.
bool use_fast(int64_t V, double tau) {
  static const bool allowed = [] {
    const char* e = std::getenv("SIMCLR_CPU_NTXENT");
    return !(e && std::strcmp(e, "reference") == 0);
  }();
  return allowed && ntxent_fast_eligible(V, tau);
}
}  // namespace

void ntxent_cpu_f32_forward(float* loss, float* lse, const float* z, void* workspace, int64_t V, int64_t D,
                            double tau, int64_t r0, int64_t r1) {
  if (!use_fast(V, tau)) return ntxent_loss_forward<float>(loss, lse, z, workspace, V, D, tau, r0, r1);
  std::vector<float> rows(static_cast<size_t>(std::max<int64_t>(r1 - r0, 0)));
  ntxent_fast_forward(rows.data(), lse, z, V, D, tau, r0, r1);
  double s = 0;  // in row order, as the reference
  for (float l : rows) s += static_cast<double>(l);
  loss[0] = static_cast<float>(s / static_cast<double>(V));
}

void ntxent_cpu_f32_backward(float* dz, const float* z, const float* lse, const float* dloss, void* workspace,
                             int64_t V, int64_t D, double tau, int64_t r0, int64_t r1) {
  if (!use_fast(V, tau))
    return ntxent_loss_backward<float>(dz, z, lse, dloss, workspace, V, D, tau, r0, r1);
  ntxent_fast_backward(dz, z, lse, static_cast<double>(dloss[0]), V, D, tau, r0, r1);
}

}  // namespace simclr::cpu
