// kernels/cpu/batchnorm.cpp - CPU kernels of kernels/batchnorm.h (the
// reference for any GPU twin). Shape legend: M rows, C channels (channels
// last). Every sweep kernel is one pass: per-channel coefficients are folded
// first so the inner loop over c is a plain multiply-add the compiler
// vectorises. The finalize kernels turn per-channel double sums into the
// per-channel T coefficients the sweeps read, in double. The same code serves
// bf16 (the CPU backend's bf16 rows): loads widen into acc_t<T> (f32), the
// arithmetic and block sums are f32, stores round once (kernels/cpu/acc.h);
// for f32 and f64, acc_t<T> is T.
#include "kernels/batchnorm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/check.h"
#include "kernels/cpu/acc.h"

namespace simclr::cpu {

namespace {

constexpr int64_t kParallelMin = 32768;  // elements below which one thread does it
constexpr int64_t kBlockRows = 128;      // rows summed in T before adding into double

int row_threads(int64_t M, int64_t C) {
  return M * C > kParallelMin ? std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(M))) : 1;
}

// Two per-channel double sums a[C], b[C] over the rows: block(m0, m1, sa, sb)
// adds rows [m0, m1) into the T sums sa[C], sb[C] (zeroed before each block;
// T is the kernels' arithmetic type acc_t).
template <class T, class F>
SIMCLR_CPU_CLONES void reduce_rows(double* a, double* b, int64_t M, int64_t C, F&& block) {
  const int nt = row_threads(M, C);
  std::vector<double> part(static_cast<size_t>(nt * 2 * C), 0.0);  // [nt][2][C]
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    double* pa = part.data() + t * 2 * C;  // [C]
    double* pb = pa + C;                   // [C]
    std::vector<T> sa(static_cast<size_t>(C)), sb(static_cast<size_t>(C));
    const int64_t begin = M * t / nt, end = M * (t + 1) / nt;
    for (int64_t m0 = begin; m0 < end; m0 += kBlockRows) {
      std::fill(sa.begin(), sa.end(), T(0));
      std::fill(sb.begin(), sb.end(), T(0));
      block(m0, std::min(end, m0 + kBlockRows), sa.data(), sb.data());
      for (int64_t c = 0; c < C; c++) pa[c] += static_cast<double>(sa[c]), pb[c] += static_cast<double>(sb[c]);
    }
  }
  for (int64_t c = 0; c < C; c++) {
    double ra = 0, rb = 0;
    for (int t = 0; t < nt; t++) ra += part[t * 2 * C + c], rb += part[t * 2 * C + C + c];
    a[c] = ra;
    b[c] = rb;
  }
}

// s1[c] = Σ_m (x[m,c] - k[c]), s2[c] = Σ_m (x[m,c] - k[c])² with the shift k =
// the first row (0 when M = 0), returned; the block sums stay small and
// accurate even when |mean| >> std.
template <class T>
std::vector<acc_t<T>> shifted_sums(double* s1, double* s2, const T* x, int64_t M, int64_t C) {
  using A = acc_t<T>;
  std::vector<A> shift(static_cast<size_t>(C), A(0));
  for (int64_t c = 0; M > 0 && c < C; c++) shift[c] = ld(x[c]);
  const A* k = shift.data();
  reduce_rows<A>(s1, s2, M, C, [&](int64_t m0, int64_t m1, A* s, A* ss) {
    for (int64_t m = m0; m < m1; m++) {
      const T* xm = x + m * C;  // [C]
      for (int64_t c = 0; c < C; c++) {
        const A d = ld(xm[c]) - k[c];
        s[c] += d;
        ss[c] += d * d;
      }
    }
  });
  return shift;
}

}  // namespace

template <class T>
void batchnorm_stats(double* sum, double* sumsq, const T* x, int64_t M, int64_t C) {
  // Sums of the shifted values x - k with k = the first row (a sample, so
  // within a few standard deviations of the mean): the T block sums stay
  // small and accurate even when |mean| >> std; converted back exactly enough
  // in double: Σx = S1 + M·k, Σx² = S2 + 2k·S1 + M·k².
  const std::vector<acc_t<T>> shift = shifted_sums(sum, sumsq, x, M, C);
  const acc_t<T>* k = shift.data();
  for (int64_t c = 0; c < C; c++) {
    const double kc = static_cast<double>(k[c]), s1 = sum[c], s2 = sumsq[c], n = static_cast<double>(M);
    sum[c] = s1 + n * kc;
    sumsq[c] = s2 + 2 * kc * s1 + n * kc * kc;
  }
}

template <class T>
void batchnorm_batch_stats(double* stats, const T* x, int64_t M, int64_t C) {
  // The shifted sums S1 = Σ(x-k), S2 = Σ(x-k)² (k = the first row, as
  // batchnorm_stats) give mean = k + S1/M and M2 = S2 - S1²/M without the
  // cancellation of Σx² - (Σx)²/M at a large mean.
  double* s1 = stats;      // [C] S1, then mean
  double* s2 = stats + C;  // [C] S2, then M2
  const std::vector<acc_t<T>> shift = shifted_sums(s1, s2, x, M, C);
  const acc_t<T>* k = shift.data();
  const double n = static_cast<double>(M);
  for (int64_t c = 0; c < C; c++) {
    if (M == 0) {
      s1[c] = s2[c] = 0;
      continue;
    }
    const double a = s1[c], b = s2[c];
    s1[c] = static_cast<double>(k[c]) + a / n;
    s2[c] = std::max(b - a * a / n, 0.0);
  }
  stats[2 * C] = n;
}

void batchnorm_merge_stats(double* stats, const double* parts, int64_t ranks, int64_t C) {
  const int64_t W = 2 * C + 1;  // one rank's block
  double n = 0;
  for (int64_t c = 0; c < C; c++) stats[c] = stats[C + c] = 0;
  for (int64_t r = 0; r < ranks; r++) {
    const double* p = parts + r * W;
    const double nb = p[2 * C];
    if (!(nb > 0)) continue;  // an empty rank adds nothing (and no 0/0)
    const double na = n, nn = na + nb;
    for (int64_t c = 0; c < C; c++) {
      const double delta = p[c] - stats[c];
      stats[c] += delta * (nb / nn);
      stats[C + c] += p[C + c] + delta * delta * (na * nb / nn);
    }
    n = nn;
  }
  stats[2 * C] = n;
}

template <class T, class B>
void batchnorm_finalize(T* mean, T* invstd, B* running_mean, B* running_var, const double* stats, int64_t C,
                        double eps, double momentum) {
  const double count = stats[2 * C];
  SIMCLR_CHECK(count > 1, "batch_norm: training needs more than one value per channel, got ", count,
               " over all ranks");
  const double m = momentum;
  for (int64_t c = 0; c < C; c++) {
    const double mu = stats[c];
    const double var = std::max(stats[C + c] / count, 0.0);  // biased M2/count, for normalising
    mean[c] = st<T>(mu);
    invstd[c] = st<T>(1.0 / std::sqrt(var + eps));
    if (running_mean) running_mean[c] = static_cast<B>((1 - m) * static_cast<double>(running_mean[c]) + m * mu);
    if (running_var) {
      const double var_unbiased = var * count / (count - 1);
      running_var[c] = static_cast<B>((1 - m) * static_cast<double>(running_var[c]) + m * var_unbiased);
    }
  }
}

template <class T, class B>
void batchnorm_from_running(T* mean, T* invstd, const B* running_mean, const B* running_var, int64_t C, double eps) {
  for (int64_t c = 0; c < C; c++) {
    mean[c] = st<T>(static_cast<double>(running_mean[c]));
    invstd[c] = st<T>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
  }
}

template <class T>
SIMCLR_CPU_CLONES void batchnorm_forward(T* y, const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, int64_t M,
                       int64_t C, bool relu) {
  using A = acc_t<T>;
  std::vector<A> a(static_cast<size_t>(C)), b(static_cast<size_t>(C));  // y = (x - mean)·a + b
  for (int64_t c = 0; c < C; c++) {
    a[c] = ld(invstd[c]) * (gamma ? ld(gamma[c]) : A(1));
    b[c] = beta ? ld(beta[c]) : A(0);
  }
  const A* pa = a.data();
  const A* pb = b.data();
  const A lo = relu ? A(0) : -std::numeric_limits<A>::infinity();
#pragma omp parallel for if (M * C > kParallelMin)
  for (int64_t m = 0; m < M; m++) {
    const T* xm = x + m * C;  // [C]
    T* ym = y + m * C;        // [C]
    for (int64_t c = 0; c < C; c++) ym[c] = st<T>(std::max((ld(xm[c]) - ld(mean[c])) * pa[c] + pb[c], lo));
  }
}

template <class T>
void batchnorm_backward_reduce(double* sum_dy, double* sum_dy_xhat, const T* dy, const T* x, const T* y,
                               const T* mean, const T* invstd, int64_t M, int64_t C) {
  // Σ g·(x - mean) per block, scaled by invstd once at the end.
  using A = acc_t<T>;
  std::vector<double> sdxc(static_cast<size_t>(C));
  reduce_rows<A>(sum_dy, sdxc.data(), M, C, [&](int64_t m0, int64_t m1, A* sd, A* sdx) {
    for (int64_t m = m0; m < m1; m++) {
      const T* xm = x + m * C;    // [C]
      const T* dym = dy + m * C;  // [C]
      if (y) {
        const T* ym = y + m * C;  // [C]
        for (int64_t c = 0; c < C; c++) {
          const A d = ld(dym[c]);  // loaded unconditionally: the select then vectorises
          const A g = ld(ym[c]) > A(0) ? d : A(0);
          sd[c] += g;
          sdx[c] += g * (ld(xm[c]) - ld(mean[c]));
        }
      } else {
        for (int64_t c = 0; c < C; c++) {
          sd[c] += ld(dym[c]);
          sdx[c] += ld(dym[c]) * (ld(xm[c]) - ld(mean[c]));
        }
      }
    }
  });
  for (int64_t c = 0; c < C; c++) sum_dy_xhat[c] = sdxc[c] * static_cast<double>(ld(invstd[c]));
}

template <class T>
void batchnorm_backward_finalize(T* dgamma, T* dbeta, T* mean_dy, T* mean_dy_xhat, const double* red,
                                 const double* red_all, const double* stats, int64_t C) {
  using A = acc_t<T>;
  if (dgamma)
    for (int64_t c = 0; c < C; c++) dgamma[c] = st<T>(ld(dgamma[c]) + static_cast<A>(red[C + c]));
  if (dbeta)
    for (int64_t c = 0; c < C; c++) dbeta[c] = st<T>(ld(dbeta[c]) + static_cast<A>(red[c]));
  if (!mean_dy) return;
  if (!red_all) {  // eval: the statistics are constants
    std::fill(mean_dy, mean_dy + C, T(0));
    std::fill(mean_dy_xhat, mean_dy_xhat + C, T(0));
    return;
  }
  const double count = stats[2 * C];
  for (int64_t c = 0; c < C; c++) {
    mean_dy[c] = st<T>(red_all[c] / count);
    mean_dy_xhat[c] = st<T>(red_all[C + c] / count);
  }
}

template <class T>
SIMCLR_CPU_CLONES void batchnorm_backward_dx(T* dx, bool accumulate, const T* dy, const T* x, const T* y, const T* mean,
                           const T* invstd, const T* gamma, const T* mean_dy, const T* mean_dy_xhat, int64_t M,
                           int64_t C) {
  // dx = k·g + (x - mean)·p + q  with k = γ·invstd, p = -k·invstd·mean_dy_xhat, q = -k·mean_dy
  using A = acc_t<T>;
  std::vector<A> k(static_cast<size_t>(C)), p(static_cast<size_t>(C)), q(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; c++) {
    k[c] = ld(invstd[c]) * (gamma ? ld(gamma[c]) : A(1));
    p[c] = -k[c] * ld(invstd[c]) * ld(mean_dy_xhat[c]);
    q[c] = -k[c] * ld(mean_dy[c]);
  }
  const A* pk = k.data();
  const A* pp = p.data();
  const A* pq = q.data();
#pragma omp parallel for if (M * C > kParallelMin)
  for (int64_t m = 0; m < M; m++) {
    const T* xm = x + m * C;    // [C]
    const T* dym = dy + m * C;  // [C]
    T* dxm = dx + m * C;        // [C]
    if (y) {
      const T* ym = y + m * C;  // [C]
      if (accumulate) {
        for (int64_t c = 0; c < C; c++) {
          const A d = ld(dym[c]);
          dxm[c] = st<T>(ld(dxm[c]) + (pk[c] * (ld(ym[c]) > A(0) ? d : A(0)) + (ld(xm[c]) - ld(mean[c])) * pp[c] + pq[c]));
        }
      } else {
        for (int64_t c = 0; c < C; c++) {
          const A d = ld(dym[c]);
          dxm[c] = st<T>(pk[c] * (ld(ym[c]) > A(0) ? d : A(0)) + (ld(xm[c]) - ld(mean[c])) * pp[c] + pq[c]);
        }
      }
    } else if (accumulate) {
      for (int64_t c = 0; c < C; c++)
        dxm[c] = st<T>(ld(dxm[c]) + (pk[c] * ld(dym[c]) + (ld(xm[c]) - ld(mean[c])) * pp[c] + pq[c]));
    } else {
      for (int64_t c = 0; c < C; c++) dxm[c] = st<T>(pk[c] * ld(dym[c]) + (ld(xm[c]) - ld(mean[c])) * pp[c] + pq[c]);
    }
  }
}

#define INSTANTIATE_RUNNING(T, B)                                                                            \
  template void batchnorm_finalize<T, B>(T*, T*, B*, B*, const double*, int64_t, double, double);            \
  template void batchnorm_from_running<T, B>(T*, T*, const B*, const B*, int64_t, double);
#define INSTANTIATE(T)                                                                                          \
  template void batchnorm_stats<T>(double*, double*, const T*, int64_t, int64_t);                              \
  template void batchnorm_batch_stats<T>(double*, const T*, int64_t, int64_t);                                 \
  INSTANTIATE_RUNNING(T, float)                                                                                 \
  INSTANTIATE_RUNNING(T, double)                                                                                \
  template void batchnorm_backward_finalize<T>(T*, T*, T*, T*, const double*, const double*, const double*,     \
                                               int64_t);                                                        \
  template void batchnorm_forward<T>(T*, const T*, const T*, const T*, const T*, const T*, int64_t, int64_t,    \
                                     bool);                                                                     \
  template void batchnorm_backward_reduce<T>(double*, double*, const T*, const T*, const T*, const T*, const T*, \
                                             int64_t, int64_t);                                                 \
  template void batchnorm_backward_dx<T>(T*, bool, const T*, const T*, const T*, const T*, const T*, const T*,  \
                                         const T*, const T*, int64_t, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
INSTANTIATE(bf16)  // the CPU backend's bf16 rows
#undef INSTANTIATE
#undef INSTANTIATE_RUNNING

}  // namespace simclr::cpu
