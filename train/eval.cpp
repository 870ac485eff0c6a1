// train/eval.cpp - features, linear probe (L-BFGS softmax regression) and
// kNN monitor (see eval.h).
#include "train/eval.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>

#include "data/holdout.h"
#include "data/loader.h"
#include "engine/autograd.h"
#include "engine/blas.h"
#include "models/init.h"
#include "train/model.h"

namespace simclr {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
FeatureSet collect(std::shared_ptr<const Dataset> ds, const DataConfig& dc, int64_t batch, int64_t dim, F&& per_batch,
                   const ProgressFn& progress) {
  FeatureSet fs;
  const int64_t n = ds->size();
  fs.x = Tensor::empty({n, dim}, DType::f32);
  fs.y = Tensor::empty({n}, DType::i64);
  fs.num_classes = ds->num_classes();
  Loader loader(ds, dc, eval_loader_options(dc, batch));
  int64_t row = 0;
  while (!loader.done()) {
    Batch b = loader.next();
    const int64_t m = b.size();
    Tensor f = per_batch(b.views);  // f32 [m, dim]
    SIMCLR_ASSERT(f.size(0) == m && f.size(1) == dim && row + m <= n);
    std::memcpy(fs.x.data<float>() + row * dim, f.data<float>(), static_cast<size_t>(m * dim) * sizeof(float));
    std::memcpy(fs.y.data<int64_t>() + row, b.labels.data<int64_t>(), static_cast<size_t>(m) * sizeof(int64_t));
    row += m;
    if (progress) progress(row, n);
  }
  SIMCLR_ASSERT(row == n);
  return fs;
}
}  // namespace

FeatureSet encoder_features(ResNet& encoder, std::shared_ptr<const Dataset> ds, const DataConfig& dc, int64_t batch,
                            const ProgressFn& progress) {
  NoGrad ng;
  return collect(
      ds, dc, batch, encoder.feature_dim(),
      [&](const Tensor& views) {
        return encoder.forward(views.to(encoder.device()), /*training=*/false).to(Device::cpu());
      },
      progress);
}

FeatureSet pixel_features(std::shared_ptr<const Dataset> ds, const DataConfig& dc, int64_t batch) {
  const int64_t dim = static_cast<int64_t>(dc.image_size) * dc.image_size * dc.channels;
  return collect(
      ds, dc, batch, dim, [&](const Tensor& views) { return views.view({views.size(0), dim}); }, {});
}

// ---------------------------------------------------------------- softmax regression

// The objective as first written (two whole-matrix sgemms): kept as the
// reference that the fused version is tested and benchmarked against.
double softmax_regression_objective_reference(const float* x, const int64_t* y, int64_t n, int64_t D, int K,
                                              const std::vector<double>& params, double l2,
                                              std::vector<double>* grad) {
  std::vector<float> W(static_cast<size_t>(K * D));
  for (size_t i = 0; i < W.size(); i++) W[i] = static_cast<float>(params[i]);
  const double* b = params.data() + K * D;
  std::vector<float> P(static_cast<size_t>(n * K));
  // logits[n,K] = x[n,D] W[K,D]^T
  gemm<float>(false, true, n, K, D, 1.0f, x, D, W.data(), D, 0.0f, P.data(), K);
  double loss = 0;
#pragma omp parallel for reduction(+ : loss) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float* p = P.data() + i * K;
    double mx = -1e300;
    for (int k = 0; k < K; k++) mx = std::max(mx, static_cast<double>(p[k]) + b[k]);
    double s = 0;
    for (int k = 0; k < K; k++) s += std::exp(static_cast<double>(p[k]) + b[k] - mx);
    const double lse = mx + std::log(s);
    loss += lse - (static_cast<double>(p[y[i]]) + b[y[i]]);
    // p becomes (softmax - onehot) / n: the gradient of the mean loss w.r.t. the logits
    for (int k = 0; k < K; k++)
      p[k] = static_cast<float>((std::exp(static_cast<double>(p[k]) + b[k] - lse) - (k == y[i] ? 1.0 : 0.0)) /
                                static_cast<double>(n));
  }
  loss /= static_cast<double>(n);
  double reg = 0;
  for (int64_t i = 0; i < K * D; i++) reg += params[i] * params[i];
  loss += 0.5 * l2 * reg;
  if (grad) {
    grad->assign(params.size(), 0.0);
    std::vector<float> gW(static_cast<size_t>(K * D));
    // gW[K,D] = P[n,K]^T x[n,D]
    gemm<float>(true, false, K, D, n, 1.0f, P.data(), K, x, D, 0.0f, gW.data(), D);
    for (int64_t i = 0; i < K * D; i++) (*grad)[i] = gW[i] + l2 * params[i];
    for (int64_t i = 0; i < n; i++)
      for (int k = 0; k < K; k++) (*grad)[K * D + k] += P[i * K + k];
  }
  return loss;
}

namespace {
// The fused objective. Rows are split into `workers` contiguous ranges (a
// number fixed by n alone), each walked in blocks of `block` rows: the block's
// logits (hand loop, 8-float lanes, up to 10 class accumulators in registers),
// its softmax / loss / bias-gradient terms in double, then its contribution
// to the worker's own float gW while the block is still in L1/L2. Partials
// are reduced in worker order, so the result does not depend on the thread
// count. The loops are compiled twice (AVX2+FMA and the baseline ISA) and
// chosen once at run time.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // v8f never crosses a non-inlined call
#define SIMCLR_AI [[gnu::always_inline]] inline
typedef float v8f __attribute__((vector_size(32)));
SIMCLR_AI v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
SIMCLR_AI void store8(float* p, const v8f& v) { std::memcpy(p, &v, sizeof v); }
SIMCLR_AI float hsum8(const v8f& v) { return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7])); }

constexpr int kMaxGroup = 10;  // classes per register group

// Z[i, k0 .. k0+KB) = x[i,:] . W[k,:] for the block's rows
template <int KB>
SIMCLR_AI void logits_group(const float* x, int64_t rows, int64_t D, const float* W, int k0, int K, float* Z) {
  const int64_t D8 = D & ~int64_t{7};
  const float* Wk = W + static_cast<int64_t>(k0) * D;
  for (int64_t i = 0; i < rows; i++) {
    const float* xi = x + i * D;
    v8f acc[KB];
#pragma GCC unroll 16
    for (int k = 0; k < KB; k++) acc[k] = v8f{};
    for (int64_t d = 0; d < D8; d += 8) {
      const v8f xv = load8(xi + d);
#pragma GCC unroll 16
      for (int k = 0; k < KB; k++) acc[k] += xv * load8(Wk + k * D + d);
    }
#pragma GCC unroll 16
    for (int k = 0; k < KB; k++) {
      float t = 0;
      for (int64_t d = D8; d < D; d++) t += xi[d] * Wk[k * D + d];
      Z[i * K + k0 + k] = hsum8(acc[k]) + t;
    }
  }
}

// gW[k0 .. k0+KB, :] += G[:, k]^T x for the block's rows (row order kept per element)
template <int KB>
SIMCLR_AI void grad_group(const float* x, int64_t rows, int64_t D, const float* G, int k0, int K, float* gW) {
  const int64_t D8 = D & ~int64_t{7};
  float* gk = gW + static_cast<int64_t>(k0) * D;
  for (int64_t d = 0; d < D8; d += 8) {
    v8f acc[KB];
#pragma GCC unroll 16
    for (int k = 0; k < KB; k++) acc[k] = load8(gk + k * D + d);
    for (int64_t i = 0; i < rows; i++) {
      const v8f xv = load8(x + i * D + d);
      const float* g = G + i * K + k0;
#pragma GCC unroll 16
      for (int k = 0; k < KB; k++) acc[k] += g[k] * xv;
    }
#pragma GCC unroll 16
    for (int k = 0; k < KB; k++) store8(gk + k * D + d, acc[k]);
  }
  for (int64_t d = D8; d < D; d++)
    for (int k = 0; k < KB; k++) {
      float a = gk[k * D + d];
      for (int64_t i = 0; i < rows; i++) a += G[i * K + k0 + k] * x[i * D + d];
      gk[k * D + d] = a;
    }
}

#define SIMCLR_GROUP_SWITCH(FN, ...)          \
  switch (kb) {                               \
    case 1: FN<1>(__VA_ARGS__); break;        \
    case 2: FN<2>(__VA_ARGS__); break;        \
    case 3: FN<3>(__VA_ARGS__); break;        \
    case 4: FN<4>(__VA_ARGS__); break;        \
    case 5: FN<5>(__VA_ARGS__); break;        \
    case 6: FN<6>(__VA_ARGS__); break;        \
    case 7: FN<7>(__VA_ARGS__); break;        \
    case 8: FN<8>(__VA_ARGS__); break;        \
    case 9: FN<9>(__VA_ARGS__); break;        \
    default: FN<10>(__VA_ARGS__); break;      \
  }

struct ObjectiveRange {
  const float* x;
  const int64_t* y;
  int64_t D;
  int K;
  const float* W;   // f32 [K, D]
  const double* b;  // [K]
  double n;         // all rows (the mean's divisor)
  int64_t block;
};

// rows [r0, r1): adds to *loss, gb[K] (double) and, when gW, gW[K, D] (float); Z: [block, K] scratch
SIMCLR_AI void objective_range_body(const ObjectiveRange& a, int64_t r0, int64_t r1, float* Z, double* loss,
                                    double* gb, float* gW) {
  const int64_t D = a.D;
  const int K = a.K;
  for (int64_t s = r0; s < r1; s += a.block) {
    const int64_t rows = std::min(a.block, r1 - s);
    const float* xb = a.x + s * D;
    for (int k0 = 0; k0 < K; k0 += kMaxGroup) {
      const int kb = std::min(kMaxGroup, K - k0);
      SIMCLR_GROUP_SWITCH(logits_group, xb, rows, D, a.W, k0, K, Z)
    }
    // the softmax exactly as in the reference: Z becomes (softmax - onehot) / n
    for (int64_t i = 0; i < rows; i++) {
      float* p = Z + i * K;
      const int64_t yi = a.y[s + i];
      double mx = -1e300;
      for (int k = 0; k < K; k++) mx = std::max(mx, static_cast<double>(p[k]) + a.b[k]);
      double sum = 0;
      for (int k = 0; k < K; k++) sum += std::exp(static_cast<double>(p[k]) + a.b[k] - mx);
      const double lse = mx + std::log(sum);
      *loss += lse - (static_cast<double>(p[yi]) + a.b[yi]);
      for (int k = 0; k < K; k++) {
        p[k] = static_cast<float>((std::exp(static_cast<double>(p[k]) + a.b[k] - lse) - (k == yi ? 1.0 : 0.0)) / a.n);
        gb[k] += p[k];
      }
    }
    if (gW)
      for (int k0 = 0; k0 < K; k0 += kMaxGroup) {
        const int kb = std::min(kMaxGroup, K - k0);
        SIMCLR_GROUP_SWITCH(grad_group, xb, rows, D, Z, k0, K, gW)
      }
  }
}
#undef SIMCLR_GROUP_SWITCH

[[gnu::target("avx2,fma")]] void objective_range_avx2(const ObjectiveRange& a, int64_t r0, int64_t r1, float* Z,
                                                      double* loss, double* gb, float* gW) {
  objective_range_body(a, r0, r1, Z, loss, gb, gW);
}
void objective_range_base(const ObjectiveRange& a, int64_t r0, int64_t r1, float* Z, double* loss, double* gb,
                          float* gW) {
  objective_range_body(a, r0, r1, Z, loss, gb, gW);
}
#undef SIMCLR_AI
#pragma GCC diagnostic pop
}  // namespace

double softmax_regression_objective_blocked(const float* x, const int64_t* y, int64_t n, int64_t D, int K,
                                            const std::vector<double>& params, double l2, std::vector<double>* grad,
                                            int64_t block, int max_workers) {
  SIMCLR_CHECK(block >= 1 && max_workers >= 1, "softmax regression: block and workers must be positive");
  std::vector<float> W(static_cast<size_t>(K * D));
  for (size_t i = 0; i < W.size(); i++) W[i] = static_cast<float>(params[i]);
  const ObjectiveRange a{x, y, D, K, W.data(), params.data() + K * D, static_cast<double>(n), block};
  // the number of workers depends on n only (never on the thread count)
  const int workers = static_cast<int>(std::clamp<int64_t>((n + block - 1) / block, 1, max_workers));
  std::vector<double> loss(static_cast<size_t>(workers), 0.0), gb(static_cast<size_t>(workers * K), 0.0);
  std::vector<float> gW(grad ? static_cast<size_t>(workers) * K * D : 0, 0.0f);
  std::vector<float> Z(static_cast<size_t>(workers * block * K));
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // dynamic: on a shared machine a descheduled thread's workers move to the
  // other threads; each worker's sums stay its own, so the result does not move
#pragma omp parallel for schedule(dynamic, 1)
  for (int w = 0; w < workers; w++) {
    const int64_t r0 = n * w / workers, r1 = n * (w + 1) / workers;
    float* gWw = grad ? gW.data() + static_cast<size_t>(w) * K * D : nullptr;
    (avx2 ? objective_range_avx2 : objective_range_base)(a, r0, r1, Z.data() + static_cast<size_t>(w) * block * K,
                                                         &loss[w], &gb[static_cast<size_t>(w) * K], gWw);
  }
  double total = 0;
  for (int w = 0; w < workers; w++) total += loss[w];
  total /= static_cast<double>(n);
  double reg = 0;
  for (int64_t i = 0; i < K * D; i++) reg += params[i] * params[i];
  total += 0.5 * l2 * reg;
  if (grad) {
    grad->assign(params.size(), 0.0);
    for (int64_t i = 0; i < K * D; i++) {
      double s = 0;
      for (int w = 0; w < workers; w++) s += gW[static_cast<size_t>(w) * K * D + i];
      (*grad)[i] = s + l2 * params[i];
    }
    for (int w = 0; w < workers; w++)
      for (int k = 0; k < K; k++) (*grad)[K * D + k] += gb[static_cast<size_t>(w) * K + k];
  }
  return total;
}

namespace {
std::atomic<bool> g_reference_objective{false};
}
void use_reference_softmax_objective(bool on) { g_reference_objective = on; }

double softmax_regression_objective(const float* x, const int64_t* y, int64_t n, int64_t D, int K,
                                    const std::vector<double>& params, double l2, std::vector<double>* grad) {
  if (g_reference_objective) return softmax_regression_objective_reference(x, y, n, D, K, params, l2, grad);
  return softmax_regression_objective_blocked(x, y, n, D, K, params, l2, grad, kSoftmaxBlockRows,
                                              kSoftmaxWorkers);
}

int lbfgs_minimize(const std::function<double(const std::vector<double>&, std::vector<double>*)>& f,
                   std::vector<double>& x, int max_iter, double rel_tol, double grad_tol) {
  const int m = 10;
  const size_t n = x.size();
  std::vector<std::vector<double>> S, Y;
  std::vector<double> rho;
  std::vector<double> g(n), gn(n), d(n), xn(n), q(n), alpha(m);
  double fx = f(x, &g);
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
    return s;
  };
  auto inf_norm = [](const std::vector<double>& a) {
    double s = 0;
    for (double v : a) s = std::max(s, std::abs(v));
    return s;
  };
  int it = 0;
  for (; it < max_iter; it++) {
    if (inf_norm(g) < grad_tol) break;
    // two-loop recursion: d = -H g
    q = g;
    const int k = static_cast<int>(S.size());
    for (int i = k - 1; i >= 0; i--) {
      alpha[i] = rho[i] * dot(S[i], q);
      for (size_t j = 0; j < n; j++) q[j] -= alpha[i] * Y[i][j];
    }
    double gamma = k > 0 ? dot(S[k - 1], Y[k - 1]) / dot(Y[k - 1], Y[k - 1]) : 1.0 / std::sqrt(dot(g, g));
    for (size_t j = 0; j < n; j++) q[j] *= gamma;
    for (int i = 0; i < k; i++) {
      double beta = rho[i] * dot(Y[i], q);
      for (size_t j = 0; j < n; j++) q[j] += S[i][j] * (alpha[i] - beta);
    }
    for (size_t j = 0; j < n; j++) d[j] = -q[j];
    double gd = dot(g, d);
    if (gd >= 0) {  // not a descent direction: restart from steepest descent
      S.clear(), Y.clear(), rho.clear();
      for (size_t j = 0; j < n; j++) d[j] = -g[j] / std::sqrt(dot(g, g));
      gd = dot(g, d);
    }
    // backtracking Armijo line search from t = 1
    double t = 1.0, fn = 0;
    bool ok = false;
    for (int ls = 0; ls < 30; ls++) {
      for (size_t j = 0; j < n; j++) xn[j] = x[j] + t * d[j];
      fn = f(xn, &gn);
      if (std::isfinite(fn) && fn <= fx + 1e-4 * t * gd) {
        ok = true;
        break;
      }
      t *= 0.5;
    }
    if (!ok) break;
    std::vector<double> s(n), y(n);
    for (size_t j = 0; j < n; j++) s[j] = xn[j] - x[j], y[j] = gn[j] - g[j];
    const double sy = dot(s, y);
    if (sy > 1e-12) {
      if (static_cast<int>(S.size()) == m) S.erase(S.begin()), Y.erase(Y.begin()), rho.erase(rho.begin());
      S.push_back(s), Y.push_back(y), rho.push_back(1.0 / sy);
    }
    const double df = fx - fn;
    x.swap(xn);
    g.swap(gn);
    fx = fn;
    if (df <= rel_tol * std::max(1.0, std::abs(fx))) {
      it++;
      break;
    }
  }
  return it;
}

namespace {
struct Standardised {
  std::vector<float> x;
  int64_t n = 0, d = 0;
};

// top-1 / top-5 of argmax(W x + b) against y
void score(const float* x, const int64_t* y, int64_t n, int64_t D, int K, const std::vector<double>& params,
           double* top1, double* top5) {
  std::vector<float> W(static_cast<size_t>(K * D));
  for (size_t i = 0; i < W.size(); i++) W[i] = static_cast<float>(params[i]);
  std::vector<float> L(static_cast<size_t>(n * K));
  gemm<float>(false, true, n, K, D, 1.0f, x, D, W.data(), D, 0.0f, L.data(), K);
  int64_t c1 = 0, c5 = 0;
  for (int64_t i = 0; i < n; i++) {
    const float* l = L.data() + i * K;
    const double mine = l[y[i]] + params[K * D + y[i]];
    int above = 0;
    for (int k = 0; k < K; k++) {
      const double v = l[k] + params[K * D + k];
      if (v > mine || (v == mine && k < y[i])) above++;
    }
    c1 += above == 0;
    c5 += above < 5;
  }
  *top1 = static_cast<double>(c1) / static_cast<double>(n);
  *top5 = static_cast<double>(c5) / static_cast<double>(n);
}
}  // namespace

json LinearProbeResult::to_json() const {
  json g = json::array();
  for (auto& p : val_top1) g.push_back({{"l2", p.first}, {"val_top1", p.second}});
  return {{"top1", top1}, {"top5", top5},         {"train_top1", train_top1}, {"l2", l2},
          {"grid", g},    {"iterations", iterations}, {"seconds", seconds}};
}

LinearProbeResult linear_probe(const FeatureSet& train, const FeatureSet& test, const LinearProbeConfig& cfg) {
  const double t0 = now_s();
  SIMCLR_CHECK(train.n() >= 2 && test.n() >= 1, "linear probe: needs a labelled train and test split");
  SIMCLR_CHECK(train.d() == test.d(), "linear probe: train/test feature sizes differ");
  const int64_t n = train.n(), D = train.d();
  int K = std::max(train.num_classes, test.num_classes);
  const int64_t* ytr = train.y.data<int64_t>();
  const int64_t* yte = test.y.data<int64_t>();
  for (int64_t i = 0; i < n; i++) {
    SIMCLR_CHECK(ytr[i] >= 0, "linear probe: the train split has unlabelled images");
    K = std::max<int>(K, static_cast<int>(ytr[i]) + 1);
  }
  for (int64_t i = 0; i < test.n(); i++) {
    SIMCLR_CHECK(yte[i] >= 0, "linear probe: the test split has unlabelled images");
    K = std::max<int>(K, static_cast<int>(yte[i]) + 1);
  }
  SIMCLR_CHECK(std::any_of(ytr, ytr + n, [&](int64_t y) { return y != ytr[0]; }), "linear probe: every image of the "
               "train split has label ", ytr[0], " (one class): its accuracy would be 100% by construction; check "
               "the labels (data.labels, or the image folder's class folders)");
  // standardise with train statistics
  std::vector<double> mu(static_cast<size_t>(D), 0.0), sd(static_cast<size_t>(D), 0.0);
  const float* xt = train.x.data<float>();
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < D; j++) mu[j] += xt[i * D + j];
  for (int64_t j = 0; j < D; j++) mu[j] /= static_cast<double>(n);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < D; j++) {
      double v = xt[i * D + j] - mu[j];
      sd[j] += v * v;
    }
  for (int64_t j = 0; j < D; j++) {
    sd[j] = std::sqrt(sd[j] / static_cast<double>(n));
    if (sd[j] < 1e-8) sd[j] = 1.0;
  }
  auto standardise = [&](const FeatureSet& fs) {
    std::vector<float> out(static_cast<size_t>(fs.n() * D));
    const float* p = fs.x.data<float>();
    for (int64_t i = 0; i < fs.n(); i++)
      for (int64_t j = 0; j < D; j++) out[i * D + j] = static_cast<float>((p[i * D + j] - mu[j]) / sd[j]);
    return out;
  };
  std::vector<float> Xtr = standardise(train), Xte = standardise(test);

  // held-out split (seeded permutation)
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = static_cast<int64_t>(uniform01(cfg.seed, 0x50524f4245ull, static_cast<uint64_t>(i)) * (i + 1));
    std::swap(perm[i], perm[std::min(j, i)]);
  }
  const int64_t nval = std::max<int64_t>(1, std::llround(cfg.val_fraction * static_cast<double>(n)));
  const int64_t nfit = n - nval;
  SIMCLR_CHECK(nfit >= 1, "linear probe: too few training images for a held-out split");
  std::vector<float> Xfit(static_cast<size_t>(nfit * D)), Xval(static_cast<size_t>(nval * D));
  std::vector<int64_t> yfit(static_cast<size_t>(nfit)), yval(static_cast<size_t>(nval));
  for (int64_t i = 0; i < n; i++) {
    const int64_t src = perm[i];
    float* dst = i < nfit ? &Xfit[i * D] : &Xval[(i - nfit) * D];
    std::memcpy(dst, &Xtr[src * D], static_cast<size_t>(D) * sizeof(float));
    (i < nfit ? yfit[i] : yval[i - nfit]) = ytr[src];
  }

  LinearProbeResult res;
  std::vector<double> grid = cfg.l2_grid;
  std::sort(grid.rbegin(), grid.rend());
  std::vector<double> params(static_cast<size_t>(K * D + K), 0.0), best_params;
  double best_acc = -1;
  for (double l2 : grid) {
    auto obj = [&](const std::vector<double>& p, std::vector<double>* g) {
      return softmax_regression_objective(Xfit.data(), yfit.data(), nfit, D, K, p, l2, g);
    };
    lbfgs_minimize(obj, params, cfg.max_iter, cfg.tol);
    double a1, a5;
    score(Xval.data(), yval.data(), nval, D, K, params, &a1, &a5);
    res.val_top1.emplace_back(l2, a1);
    if (a1 > best_acc) best_acc = a1, res.l2 = l2, best_params = params;
  }
  // refit on the whole training split from the chosen solution
  params = best_params;
  auto obj = [&](const std::vector<double>& p, std::vector<double>* g) {
    return softmax_regression_objective(Xtr.data(), ytr, n, D, K, p, res.l2, g);
  };
  res.iterations = lbfgs_minimize(obj, params, cfg.max_iter, cfg.tol);
  double tr5;
  score(Xtr.data(), ytr, n, D, K, params, &res.train_top1, &tr5);
  score(Xte.data(), yte, test.n(), D, K, params, &res.top1, &res.top5);
  res.seconds = now_s() - t0;
  return res;
}

// ---------------------------------------------------------------- kNN

KnnResult knn_eval(const FeatureSet& train, const FeatureSet& test, int k, double temperature) {
  const double t0 = now_s();
  SIMCLR_CHECK(train.d() == test.d(), "kNN: train/test feature sizes differ");
  const int64_t n = train.n(), m = test.n(), D = train.d();
  SIMCLR_CHECK(n >= 1 && m >= 1, "kNN: needs a labelled train split (the bank) and a test split");
  k = static_cast<int>(std::min<int64_t>(k, n));  // reported in KnnResult::k (a bank smaller than eval.knn_k)
  int K = std::max(train.num_classes, test.num_classes);
  const int64_t* ytr = train.y.data<int64_t>();
  const int64_t* yte = test.y.data<int64_t>();
  for (int64_t i = 0; i < n; i++) {
    SIMCLR_CHECK(ytr[i] >= 0, "kNN: the train split has unlabelled images");
    K = std::max<int>(K, static_cast<int>(ytr[i]) + 1);
  }
  for (int64_t i = 0; i < m; i++) {
    SIMCLR_CHECK(yte[i] >= 0, "kNN: the test split has unlabelled images");
    K = std::max<int>(K, static_cast<int>(yte[i]) + 1);
  }
  SIMCLR_CHECK(std::any_of(ytr, ytr + n, [&](int64_t y) { return y != ytr[0]; }), "kNN: every image of the train "
               "split (the bank) has label ", ytr[0], " (one class): its accuracy would be 100% by construction; "
               "check the labels");
  auto normalised = [D](const FeatureSet& fs) {
    std::vector<float> out(static_cast<size_t>(fs.n() * D));
    const float* p = fs.x.data<float>();
    for (int64_t i = 0; i < fs.n(); i++) {
      double s = 0;
      for (int64_t j = 0; j < D; j++) s += static_cast<double>(p[i * D + j]) * p[i * D + j];
      const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
      for (int64_t j = 0; j < D; j++) out[i * D + j] = static_cast<float>(p[i * D + j] * inv);
    }
    return out;
  };
  std::vector<float> A = normalised(train), B = normalised(test);
  const int64_t chunk = 256;
  std::vector<float> S(static_cast<size_t>(chunk * n));
  int64_t c1 = 0, c5 = 0;
  for (int64_t r0 = 0; r0 < m; r0 += chunk) {
    const int64_t rows = std::min(chunk, m - r0);
    // S[rows, n] = B[r0:r0+rows] A^T
    gemm<float>(false, true, rows, n, D, 1.0f, &B[r0 * D], D, A.data(), D, 0.0f, S.data(), n);
#pragma omp parallel for reduction(+ : c1, c5) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float* s = &S[r * n];
      std::vector<int64_t> idx(static_cast<size_t>(n));
      std::iota(idx.begin(), idx.end(), 0);
      std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), [s](int64_t a, int64_t b) {
        return s[a] > s[b] || (s[a] == s[b] && a < b);
      });
      std::vector<double> votes(static_cast<size_t>(K), 0.0);
      for (int j = 0; j < k; j++) votes[ytr[idx[j]]] += std::exp(static_cast<double>(s[idx[j]]) / temperature);
      const int64_t y = yte[r0 + r];
      int above = 0;
      for (int c = 0; c < K; c++)
        if (votes[c] > votes[y] || (votes[c] == votes[y] && c < y)) above++;
      c1 += above == 0;
      c5 += above < 5;
    }
  }
  KnnResult res;
  res.k = k;
  res.top1 = static_cast<double>(c1) / static_cast<double>(m);
  res.top5 = static_cast<double>(c5) / static_cast<double>(m);
  res.seconds = now_s() - t0;
  return res;
}

// ---------------------------------------------------------------- whole evaluations

json ProbeReport::to_json() const {
  json j = {{"what", what},
            {"train_images", train_images},
            {"test_images", test_images},
            {"dim", dim},
            {"feature_seconds", feature_seconds}};
  if (linear.seconds > 0 || linear.top1 > 0) j["linear"] = linear.to_json();
  if (split != "test") j["split"] = split;  // "holdout": scored on held-out training images (eval.holdout)
  if (has_knn) j["knn"] = {{"top1", knn.top1}, {"top5", knn.top5}, {"k", knn.k}, {"seconds", knn.seconds}};
  return j;
}

namespace {
LinearProbeConfig probe_config(const RunConfig& cfg) {
  LinearProbeConfig lc;
  lc.l2_grid = cfg.eval.l2_grid;
  lc.val_fraction = cfg.eval.val_fraction;
  lc.max_iter = cfg.eval.max_iter;
  lc.seed = cfg.train.seed;
  return lc;
}
}  // namespace

ProbeReport probe_encoder(ResNet& encoder, const RunConfig& cfg, bool linear, bool knn, const std::string& what,
                          const ProgressFn& progress) {
  ProbeReport r;
  r.what = what;
  r.split = score_split_name(cfg.eval.holdout);
  std::shared_ptr<Dataset> tr = open_run_split(cfg.data, "probe", cfg.eval.holdout, cfg.eval.holdout_seed),
                           te = open_run_split(cfg.data, "score", cfg.eval.holdout, cfg.eval.holdout_seed);
  const int64_t total = tr->size() + te->size();
  const double t0 = now_s();
  FeatureSet ftr = encoder_features(encoder, tr, cfg.data, cfg.eval.batch, [&](int64_t d, int64_t) {
    if (progress) progress(d, total);
  });
  FeatureSet fte = encoder_features(encoder, te, cfg.data, cfg.eval.batch, [&](int64_t d, int64_t) {
    if (progress) progress(tr->size() + d, total);
  });
  r.feature_seconds = now_s() - t0;
  r.train_images = ftr.n();
  r.test_images = fte.n();
  r.dim = ftr.d();
  if (linear) r.linear = linear_probe(ftr, fte, probe_config(cfg));
  if (knn) {
    r.has_knn = true;
    r.knn_k_asked = cfg.eval.knn_k;
    r.knn = knn_eval(ftr, fte, cfg.eval.knn_k, cfg.eval.knn_temperature);
  }
  return r;
}

EvalEstimate estimate_eval_seconds(const RunConfig& cfg, int encoders, bool raw_pixels) {
  EvalEstimate e;
  std::shared_ptr<Dataset> tr = open_run_split(cfg.data, "probe", cfg.eval.holdout, cfg.eval.holdout_seed),
                           te = open_run_split(cfg.data, "score", cfg.eval.holdout, cfg.eval.holdout_seed);
  const int64_t images = tr->size() + te->size();
  const int64_t batch = std::min<int64_t>(cfg.eval.batch, tr->size());
  SimclrModel model(cfg.model, nullptr);
  model.init(cfg.train.seed);
  ResNet& encoder = *model.encoder;
  {
    NoGrad ng;
    Loader loader(tr, cfg.data, eval_loader_options(cfg.data, batch));
    double t = 0;
    for (int k = 0; k < 2 && !loader.done(); k++) {
      const double t0 = now_s();
      Batch b = loader.next();
      (void)encoder.forward(b.views, /*training=*/false);
      t = now_s() - t0;  // the second batch (the first allocates)
    }
    e.features_seconds = encoders * t / static_cast<double>(batch) * static_cast<double>(images);
  }
  const int K = std::max(2, tr->num_classes());
  const int64_t n = tr->size();
  const int64_t nfit = n - std::max<int64_t>(1, std::llround(cfg.eval.val_fraction * static_cast<double>(n)));
  const double evals = 1.1 * cfg.eval.max_iter * (static_cast<double>(cfg.eval.l2_grid.size()) + 1.0);
  auto one_eval = [&](int64_t D) {  // one objective + gradient at nfit x D (synthetic standardised values)
    std::vector<float> x(static_cast<size_t>(nfit * D));
    for (size_t i = 0; i < x.size(); i++) x[i] = static_cast<float>((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    std::vector<int64_t> y(static_cast<size_t>(nfit));
    for (int64_t i = 0; i < nfit; i++) y[i] = i % K;
    std::vector<double> p(static_cast<size_t>(K * D + K), 0.01), g;
    const double t0 = now_s();
    softmax_regression_objective(x.data(), y.data(), nfit, D, K, p, 1e-4, &g);
    return now_s() - t0;
  };
  e.probe_seconds = encoders * evals * one_eval(encoder.feature_dim());
  if (raw_pixels) {
    const int64_t pd = static_cast<int64_t>(cfg.data.image_size) * cfg.data.image_size * cfg.data.channels;
    e.probe_seconds += evals * one_eval(pd);
  }
  return e;
}

ProbeReport probe_pixels(const RunConfig& cfg) {
  ProbeReport r;
  r.what = "raw pixels";
  r.split = score_split_name(cfg.eval.holdout);
  std::shared_ptr<Dataset> tr = open_run_split(cfg.data, "probe", cfg.eval.holdout, cfg.eval.holdout_seed),
                           te = open_run_split(cfg.data, "score", cfg.eval.holdout, cfg.eval.holdout_seed);
  const double t0 = now_s();
  FeatureSet ftr = pixel_features(tr, cfg.data, cfg.eval.batch);
  FeatureSet fte = pixel_features(te, cfg.data, cfg.eval.batch);
  r.feature_seconds = now_s() - t0;
  r.train_images = ftr.n();
  r.test_images = fte.n();
  r.dim = ftr.d();
  r.linear = linear_probe(ftr, fte, probe_config(cfg));
  return r;
}

}  // namespace simclr
