// tests/test_op_table.cpp - the CPU modes of the op test table
// (tests/op_table_cases.h): float64 forward against naive loops, float64
// central-difference gradients, f32 against f64, fused ops against their
// composites, and the table's own completeness (every op of the enum has
// rows in every mode). Every mode runs with the CPU allocator's debug mode on
// (engine/device.h): an output element an op forgets to write is NaN, and the
// guard bytes around every block are checked after every op call.
// OP_TABLE_VERBOSE=1 prints the measured error and the time of every row and mode.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/op_table.h"
#include "kernels/registry.h"
#include "helpers.h"
#include "losses/ntxent_composite.h"
#include "op_table_cases.h"

using namespace simclr;
using namespace simclr::test;

namespace {

// ------------------------------------------------------------------ inputs

struct Inputs {
  std::vector<Tensor> diff;    // differentiable inputs (require grad), in the op's order
  std::vector<Tensor> consts;  // constants in the inputs' dtype (sum_product's r, BN running statistics)
  std::vector<Tensor> fixed;   // constants of their own dtype (labels, f32 BN running statistics)
};

// |x| in [0.05, 1) with alternating signs: away from ReLU's kink.
Tensor away_from_zero(const Shape& s, uint64_t seed) {
  Tensor x = rand_tensor(s, seed, 0.05, 1.0);
  double* p = x.data<double>();
  for (int64_t i = 0; i < x.numel(); i += 2) p[i] = -p[i];
  return x;
}

// Distinct values spaced by 2/numel (far apart compared with the finite-difference step), shuffled.
Tensor distinct_tensor(const Shape& s, uint64_t seed) {
  Tensor t = Tensor::empty(s, DType::f64);
  std::vector<int64_t> idx(static_cast<size_t>(t.numel()));
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 g(seed);
  std::shuffle(idx.begin(), idx.end(), g);
  for (int64_t i = 0; i < t.numel(); i++)
    t.data<double>()[i] = -1.0 + 2.0 * static_cast<double>(idx[i]) / static_cast<double>(t.numel());
  return t;
}

Tensor labels_for(int64_t N, int64_t K, DType dt, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<int64_t> v(static_cast<size_t>(N));
  for (auto& l : v) l = static_cast<int64_t>(g() % static_cast<uint64_t>(K));
  Tensor t = Tensor::from_vector(v, {N});
  if (dt == DType::i64) return t;
  std::vector<int32_t> w(v.begin(), v.end());
  return Tensor::from_vector(w, {N});
}

bool bn_has_running(const OpCase& c) { return !c.opt.training || c.opt.running; }

// The row's inputs in float64.
Inputs make_inputs(const OpCase& c, uint64_t seed) {
  const Shape& s = c.shapes[0];
  Inputs in;
  switch (c.op) {
    case Op::relu: in.diff = {away_from_zero(s, seed)}; break;
    case Op::add: in.diff = {rand_tensor(s, seed), rand_tensor(c.shapes[1], seed + 1)}; break;
    case Op::add_relu: {  // b = t - a with |t| >= 0.05: a + b stays away from the kink
      Tensor a = rand_tensor(s, seed), b = away_from_zero(c.shapes[1], seed + 1);
      for (int64_t i = 0; i < b.numel(); i++) b.data<double>()[i] -= a.at(i);
      in.diff = {a, b};
      break;
    }
    case Op::sum_product:
      in.diff = {rand_tensor(s, seed)};
      in.consts = {rand_tensor(s, seed + 1)};
      break;
    case Op::mean:
    case Op::scale:
    case Op::global_avg_pool:
    case Op::ntxent: in.diff = {rand_tensor(s, seed)}; break;
    case Op::linear:
    case Op::conv2d:
      in.diff = {rand_tensor(s, seed), rand_tensor(c.shapes[1], seed + 1)};
      if (c.op == Op::linear && c.opt.bias) in.diff.push_back(rand_tensor({c.shapes[1][0]}, seed + 2));
      break;
    case Op::max_pool2d: in.diff = {distinct_tensor(s, seed)}; break;
    case Op::batch_norm: {
      const int64_t C = s[-1];
      in.diff = {rand_tensor(s, seed, -2, 3)};
      if (c.opt.affine) {
        in.diff.push_back(rand_tensor({C}, seed + 1, 0.5, 1.5));  // gamma
        in.diff.push_back(rand_tensor({C}, seed + 2));            // beta
      }
      if (bn_has_running(c)) {
        const DType bt = c.opt.f32_buffers ? DType::f32 : DType::f64;
        std::vector<Tensor> rs = {rand_tensor({C}, seed + 3, -0.5, 0.5, bt), rand_tensor({C}, seed + 4, 0.5, 2.0, bt)};
        (c.opt.f32_buffers ? in.fixed : in.consts) = rs;
      }
      break;
    }
    case Op::l2_normalize: {
      in.diff = {rand_tensor(s, seed, -2, 2)};
      if (c.opt.tiny_row)  // row 1: norm ~1e-5, below eps
        for (int64_t d = 0; d < s[1]; d++) in.diff[0].data<double>()[s[1] + d] *= 1e-5;
      break;
    }
    case Op::cross_entropy:
      in.diff = {rand_tensor(s, seed, -3, 3)};
      in.fixed = {labels_for(s[0], s[1], c.opt.labels, seed + 1)};
      break;
    case Op::COUNT: break;
  }
  for (Tensor& t : in.diff) t.set_requires_grad();
  return in;
}

// The same inputs in dtype dt (differentiable inputs and the constants that follow them).
Inputs convert(const Inputs& in, DType dt) {
  Inputs out = in;
  for (Tensor& t : out.diff) t = t.to(dt).set_requires_grad();
  for (Tensor& t : out.consts) t = t.to(dt);
  return out;
}

// ------------------------------------------------------------------ the op, its composite

BatchNormOptions bn_options(const OpCase& c, bool relu) {
  BatchNormOptions o;
  o.training = c.opt.training;
  o.relu = relu;
  return o;
}

Tensor apply_bn(const OpCase& c, const std::vector<Tensor>& d, const Inputs& in, bool relu) {
  const std::vector<Tensor>& rs = c.opt.f32_buffers ? in.fixed : in.consts;
  const Tensor rm = bn_has_running(c) ? rs[0] : Tensor(), rv = bn_has_running(c) ? rs[1] : Tensor();
  const Tensor g = c.opt.affine ? d[1] : Tensor(), b = c.opt.affine ? d[2] : Tensor();
  return batch_norm(d[0], g, b, rm, rv, bn_options(c, relu));
}

// The op of the row on the differentiable inputs d (the row's other inputs from `in`).
Tensor apply(const OpCase& c, const std::vector<Tensor>& d, const Inputs& in) {
  switch (c.op) {
    case Op::relu: return relu(d[0]);
    case Op::add: return add(d[0], d[1]);
    case Op::add_relu: return add_relu(d[0], d[1]);
    case Op::sum_product: return sum_product(d[0], in.consts[0]);
    case Op::mean: return mean(d[0]);
    case Op::scale: return scale(d[0], c.opt.scale);
    case Op::linear: return linear(d[0], d[1], c.opt.bias ? d[2] : Tensor());
    case Op::conv2d: return conv2d(d[0], d[1], c.opt.stride, c.opt.pad);
    case Op::max_pool2d: return max_pool2d(d[0], c.opt.kernel, c.opt.stride, c.opt.pad);
    case Op::global_avg_pool: return global_avg_pool(d[0]);
    case Op::batch_norm: return apply_bn(c, d, in, c.opt.relu);
    case Op::l2_normalize: return l2_normalize(d[0], c.opt.eps);
    case Op::cross_entropy: return cross_entropy(d[0], in.fixed[0]);
    case Op::ntxent: return ntxent(d[0], c.opt.tau);
    case Op::COUNT: break;
  }
  FAIL("no call for op " << op_name(c.op));
  return Tensor();
}

// The fused op written as its composite of primitive ops.
Tensor apply_composite(const OpCase& c, const std::vector<Tensor>& d, const Inputs& in) {
  switch (c.op) {
    case Op::add_relu: return relu(add(d[0], d[1]));
    case Op::batch_norm: return relu(apply_bn(c, d, in, false));
    case Op::ntxent: return ntxent_composite(d[0], c.opt.tau);
    default: break;
  }
  FAIL("no composite for op " << op_name(c.op));
  return Tensor();
}

// ------------------------------------------------------------------ naive float64 references

int64_t out_size(int64_t in, int64_t k, int s, int p) { return (in + 2 * p - k) / s + 1; }

// y[N,Ho,Wo,O] by the definition: a 7-deep loop.
Tensor naive_conv(const Tensor& x, const Tensor& w, int s, int p) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t O = w.size(0), kH = w.size(1), kW = w.size(2);
  const int64_t Ho = out_size(H, kH, s, p), Wo = out_size(W, kW, s, p);
  Tensor y = Tensor::zeros({N, Ho, Wo, O}, DType::f64);
  double* yp = y.data<double>();
  const double* xp = x.data<double>();
  const double* wp = w.data<double>();
  for (int64_t n = 0; n < N; n++)
    for (int64_t ho = 0; ho < Ho; ho++)
      for (int64_t wo = 0; wo < Wo; wo++)
        for (int64_t o = 0; o < O; o++) {
          double acc = 0;
          for (int64_t kh = 0; kh < kH; kh++)
            for (int64_t kw = 0; kw < kW; kw++)
              for (int64_t c = 0; c < C; c++) {
                const int64_t ih = ho * s - p + kh, iw = wo * s - p + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += xp[((n * H + ih) * W + iw) * C + c] * wp[((o * kH + kh) * kW + kw) * C + c];
              }
          yp[((n * Ho + ho) * Wo + wo) * O + o] = acc;
        }
  return y;
}

// Max pool by the definition (padding never wins).
Tensor naive_max_pool(const Tensor& x, int k, int s, int p) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t Ho = out_size(H, k, s, p), Wo = out_size(W, k, s, p);
  Tensor y = Tensor::zeros({N, Ho, Wo, C}, DType::f64);
  for (int64_t n = 0; n < N; n++)
    for (int64_t ho = 0; ho < Ho; ho++)
      for (int64_t wo = 0; wo < Wo; wo++)
        for (int64_t c = 0; c < C; c++) {
          double best = -INFINITY;
          for (int64_t ih = ho * s - p; ih < ho * s - p + k; ih++)
            for (int64_t iw = wo * s - p; iw < wo * s - p + k; iw++)
              if (ih >= 0 && ih < H && iw >= 0 && iw < W) best = std::max(best, x.at(((n * H + ih) * W + iw) * C + c));
          y.data<double>()[((n * Ho + ho) * Wo + wo) * C + c] = best;
        }
  return y;
}

// Batch norm by the formulas of ops/ops.h (per-channel batch statistics or the running ones).
Tensor naive_batch_norm(const OpCase& c, const Inputs& in) {
  const Tensor& x = in.diff[0];
  const int64_t C = x.size(-1), M = x.numel() / C;
  std::vector<double> mu(C, 0.0), var(C, 0.0);
  if (c.opt.training) {
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < C; k++) mu[k] += x.at(m * C + k) / static_cast<double>(M);
    for (int64_t m = 0; m < M; m++)
      for (int64_t k = 0; k < C; k++) var[k] += std::pow(x.at(m * C + k) - mu[k], 2) / static_cast<double>(M);
  } else {
    const std::vector<Tensor>& rs = c.opt.f32_buffers ? in.fixed : in.consts;
    for (int64_t k = 0; k < C; k++) mu[k] = rs[0].at(k), var[k] = rs[1].at(k);
  }
  Tensor y = Tensor::empty(x.shape(), DType::f64);
  for (int64_t m = 0; m < M; m++)
    for (int64_t k = 0; k < C; k++) {
      double v = (x.at(m * C + k) - mu[k]) / std::sqrt(var[k] + BatchNormOptions().eps);
      if (c.opt.affine) v = v * in.diff[1].at(k) + in.diff[2].at(k);
      y.data<double>()[m * C + k] = c.opt.relu ? std::max(v, 0.0) : v;
    }
  return y;
}

// NT-Xent by its definition (kernels/ntxent.h): ẑ, s = ẑẑᵀ, lse over k ≠ i, ℓ_i = lse_i - s_ip/τ.
double naive_ntxent(const Tensor& z, double tau) {
  const int64_t V = z.size(0), D = z.size(1), N = V / 2;
  std::vector<double> zn(static_cast<size_t>(V * D));
  for (int64_t i = 0; i < V; i++) {
    double n = 0;
    for (int64_t d = 0; d < D; d++) n += z.at(i * D + d) * z.at(i * D + d);
    n = std::max(std::sqrt(n), 1e-12);
    for (int64_t d = 0; d < D; d++) zn[i * D + d] = z.at(i * D + d) / n;
  }
  auto s = [&](int64_t i, int64_t k) {
    double acc = 0;
    for (int64_t d = 0; d < D; d++) acc += zn[i * D + d] * zn[k * D + d];
    return acc;
  };
  double total = 0;
  for (int64_t i = 0; i < V; i++) {
    double sum = 0;
    for (int64_t k = 0; k < V; k++)
      if (k != i) sum += std::exp((s(i, k) - 1.0) / tau);  // shifted by the bound s <= 1
    total += 1.0 / tau + std::log(sum) - s(i, (i + N) % V) / tau;
  }
  return total / static_cast<double>(V);
}

Tensor scalar(double v) { return Tensor::from_vector(std::vector<double>{v}, {1}); }

// The row's forward by an independent naive loop, in float64.
Tensor reference(const OpCase& c, const Inputs& in) {
  const Tensor& x = in.diff[0];
  const int64_t n = x.numel();
  auto map = [&](auto f) {
    Tensor y = Tensor::empty(x.shape(), DType::f64);
    for (int64_t i = 0; i < n; i++) y.data<double>()[i] = f(i);
    return y;
  };
  switch (c.op) {
    case Op::relu: return map([&](int64_t i) { return std::max(x.at(i), 0.0); });
    case Op::add: return map([&](int64_t i) { return x.at(i) + in.diff[1].at(i); });
    case Op::add_relu: return map([&](int64_t i) { return std::max(x.at(i) + in.diff[1].at(i), 0.0); });
    case Op::scale: return map([&](int64_t i) { return x.at(i) * c.opt.scale; });
    case Op::sum_product: {
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += x.at(i) * in.consts[0].at(i);
      return scalar(s);
    }
    case Op::mean: {
      double s = 0;
      for (int64_t i = 0; i < n; i++) s += x.at(i);
      return scalar(s / static_cast<double>(n));
    }
    case Op::linear: {
      const Tensor& w = in.diff[1];
      const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
      Tensor y = Tensor::empty({N, O}, DType::f64);
      for (int64_t r = 0; r < N; r++)
        for (int64_t o = 0; o < O; o++) {
          double acc = c.opt.bias ? in.diff[2].at(o) : 0.0;
          for (int64_t i = 0; i < I; i++) acc += x.at(r * I + i) * w.at(o * I + i);
          y.data<double>()[r * O + o] = acc;
        }
      return y;
    }
    case Op::conv2d: return naive_conv(x, in.diff[1], c.opt.stride, c.opt.pad);
    case Op::max_pool2d: return naive_max_pool(x, c.opt.kernel, c.opt.stride, c.opt.pad);
    case Op::global_avg_pool: {
      const int64_t N = x.size(0), HW = x.size(1) * x.size(2), C = x.size(3);
      Tensor y = Tensor::empty({N, C}, DType::f64);
      for (int64_t b = 0; b < N; b++)
        for (int64_t k = 0; k < C; k++) {
          double s = 0;
          for (int64_t i = 0; i < HW; i++) s += x.at((b * HW + i) * C + k);
          y.data<double>()[b * C + k] = s / static_cast<double>(HW);
        }
      return y;
    }
    case Op::batch_norm: return naive_batch_norm(c, in);
    case Op::l2_normalize: {
      const int64_t D = x.size(1);
      return map([&](int64_t i) {
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += x.at(i / D * D + d) * x.at(i / D * D + d);
        return x.at(i) / std::max(std::sqrt(s), c.opt.eps);
      });
    }
    case Op::cross_entropy: {
      const int64_t N = x.size(0), K = x.size(1);
      double total = 0;
      for (int64_t r = 0; r < N; r++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++) s += std::exp(x.at(r * K + k));
        total += std::log(s) - x.at(r * K + static_cast<int64_t>(in.fixed[0].at(r)));
      }
      return scalar(total / static_cast<double>(N));
    }
    case Op::ntxent: return scalar(naive_ntxent(x, c.opt.tau));
    case Op::COUNT: break;
  }
  FAIL("no reference for op " << op_name(c.op));
  return Tensor();
}

// ------------------------------------------------------------------ running the modes

std::string label(const OpCase& c) { return std::string(op_name(c.op)) + " / " + c.name + " / " + dtype_name(c.dtype); }

bool verbose() { return std::getenv("OP_TABLE_VERBOSE") != nullptr; }

void report(const OpCase& c, const char* mode, double fwd, double grad) {
  if (verbose()) std::printf("%-6s %-70s fwd %.3g grad %.3g\n", mode, label(c).c_str(), fwd, grad);
}

int64_t count_nonfinite(const Tensor& t) {
  int64_t bad = 0;
  for (int64_t i = 0; i < t.numel(); i++) bad += !std::isfinite(t.at(i));
  return bad;
}

// The op's output (no tape) and its gradients for the cotangent r; every call is followed by
// the allocator's guard check, and no output or gradient may hold a NaN (an unwritten element).
struct Run {
  Tensor y;
  std::vector<Tensor> grads;
};
template <class F>
Run run(F&& f, const Inputs& in, const Tensor& r) {
  Run out;
  {
    NoGrad ng;
    out.y = f(in.diff);
  }
  cpu_alloc_check();
  out.grads = grads_of(f, in.diff, r);
  cpu_alloc_check();
  CHECK(count_nonfinite(out.y) == 0);
  for (const Tensor& g : out.grads) {
    REQUIRE(g.defined());
    CHECK(count_nonfinite(g) == 0);
  }
  return out;
}

// max over the gradients of rel_err(a_i, b_i)
double grad_err(const Run& a, const Run& b) {
  REQUIRE(a.grads.size() == b.grads.size());
  double e = 0;
  for (size_t i = 0; i < a.grads.size(); i++) e = std::max(e, rel_err(a.grads[i], b.grads[i]));
  return e;
}

// Runs `got` and `want` (on their inputs) with the same random cotangent and checks
// got's output and gradients against want's within tol; returns got's run.
template <class F, class G>
Run compare(const OpCase& c, const char* mode, const Tol& tol, uint64_t seed, F&& got, const Inputs& got_in, G&& want,
            const Inputs& want_in) {
  Tensor y0;
  {
    NoGrad ng;
    y0 = want(want_in.diff);
  }
  const Tensor r = rand_tensor(y0.shape(), seed + 7);
  const Run w = run(want, want_in, r), g = run(got, got_in, r.to(got_in.diff[0].dtype()));
  const double ef = rel_err(g.y, w.y), eg = grad_err(g, w);
  report(c, mode, ef, eg);
  CHECK(ef <= tol.fwd);
  CHECK(eg <= tol.grad);
  return g;
}

// Calls body(row, seed) for every row that runs the mode, with the allocator's debug mode on.
template <class F>
void for_rows(Tol OpCase::*mode, F&& body) {
  CpuAllocDebug debug;
  const std::vector<OpCase>& rows = op_cases();
  int ran = 0;
  for (size_t i = 0; i < rows.size(); i++) {
    const OpCase& c = rows[i];
    if (!(c.*mode).on()) continue;
    INFO("row " << i << ": " << label(c) << " (tolerance: " << (c.*mode).why << ")");
    const auto t0 = std::chrono::steady_clock::now();
    body(c, simclr::test::row_seed(i));
    if (verbose()) {
      const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - t0;
      std::printf("       %.1f ms\n", ms.count());
    }
    clear_tape();
    cpu_alloc_check();
    ran++;
  }
  CHECK(ran > 0);
}

}  // namespace

// ================================================================ the table itself

TEST_CASE("op table: every op of the enum has rows in every mode, every tolerance a reason", "[optable]") {
  const std::vector<OpCase>& rows = op_cases();
  for (int i = 0; i < static_cast<int>(Op::COUNT); i++) {
    const Op op = static_cast<Op>(i);
    INFO("op " << op_name(op));
    int n = 0, ref = 0, grad = 0, low = 0, fused = 0;
    for (const OpCase& c : rows) {
      if (c.op != op) continue;
      n++, ref += c.ref.on(), grad += c.grad.on(), low += c.low.on(), fused += c.fused.on();
    }
    CHECK(n > 0);
    CHECK(ref > 0);
    CHECK(grad > 0);
    CHECK(low > 0);
    // a fused op is checked against its composite
    if (op == Op::add_relu || op == Op::ntxent || op == Op::batch_norm) CHECK(fused > 0);
    // every (op, dtype) a CUDA kernel exists for has rows for it
    for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
      if (!supports(DeviceKind::cuda, op, dt)) continue;
      INFO("dtype " << dtype_name(dt) << " is supported on cuda");
      CHECK(std::any_of(rows.begin(), rows.end(),
                        [&](const OpCase& c) { return c.op == op && c.dtype == dt && c.dev.on(); }));
    }
  }
  std::set<std::string> names;
  bool bn_relu_train = false, bn_relu_eval = false;
  for (const OpCase& c : rows) {
    INFO(label(c));
    CHECK(names.insert(label(c)).second);  // unique
    CHECK(!c.shapes.empty());
    for (const Tol* t : {&c.ref, &c.grad, &c.low, &c.fused, &c.dev})
      if (t->on()) CHECK(std::string(t->why).size() > 20);
    if (c.low.on()) CHECK((supports(DeviceKind::cpu, c.op, c.dtype) && c.dtype != DType::f64));
    if (c.dev.on()) CHECK(supports(DeviceKind::cuda, c.op, c.dtype));
    // fused rows: every add_relu row, every batch norm row with the ReLU
    if (c.op == Op::add_relu || (c.op == Op::batch_norm && c.opt.relu)) CHECK(c.fused.on());
    if (c.fused.on()) CHECK((c.op == Op::add_relu || c.op == Op::ntxent || (c.op == Op::batch_norm && c.opt.relu)));
    if (c.op == Op::batch_norm && c.fused.on()) (c.opt.training ? bn_relu_train : bn_relu_eval) = true;
  }
  CHECK(bn_relu_train);
  CHECK(bn_relu_eval);
}

// ================================================================ the modes

TEST_CASE("op table (ref): float64 forward against naive loops", "[optable][ref]") {
  for_rows(&OpCase::ref, [](const OpCase& c, uint64_t seed) {
    Inputs in = make_inputs(c, seed);
    Tensor y;
    {
      NoGrad ng;
      y = apply(c, in.diff, in);
    }
    cpu_alloc_check();
    const Tensor want = reference(c, in);
    REQUIRE(y.shape() == want.shape());
    CHECK(count_nonfinite(y) == 0);
    const double e = rel_err(y, want);
    report(c, "ref", e, 0);
    CHECK(e <= c.ref.fwd);
  });
}

TEST_CASE("op table (a): float64 central-difference gradients", "[optable][gradcheck]") {
  for_rows(&OpCase::grad, [](const OpCase& c, uint64_t seed) {
    Inputs in = make_inputs(c, seed);
    auto f = [&](const std::vector<Tensor>& d) {
      Tensor y = apply(c, d, in);
      cpu_alloc_check();
      return y;
    };
    const double e = gradcheck(f, in.diff);
    report(c, "grad", 0, e);
    CHECK(e <= c.grad.grad);
  });
}

TEST_CASE("op table (b): reduced precision against float64, forward and gradients", "[optable][f32]") {
  for_rows(&OpCase::low, [](const OpCase& c, uint64_t seed) {
    const Inputs in = make_inputs(c, seed), lo = convert(in, c.dtype);
    auto f64 = [&](const std::vector<Tensor>& d) { return apply(c, d, in); };
    auto flo = [&](const std::vector<Tensor>& d) { return apply(c, d, lo); };
    const Run b = compare(c, "low", c.low, seed, flo, lo, f64, in);
    CHECK(b.y.dtype() == c.dtype);
  });
}

TEST_CASE("op table (fused): fused ops equal their composites, values and gradients", "[optable][fused]") {
  for_rows(&OpCase::fused, [](const OpCase& c, uint64_t seed) {
    const Inputs in = make_inputs(c, seed);
    auto fused = [&](const std::vector<Tensor>& d) { return apply(c, d, in); };
    auto composite = [&](const std::vector<Tensor>& d) { return apply_composite(c, d, in); };
    const Run a = compare(c, "fused", c.fused, seed, fused, in, composite, in);
    if (c.op != Op::ntxent) {  // the ReLU is active somewhere and passes somewhere
      int64_t zeros = 0;
      for (int64_t i = 0; i < a.y.numel(); i++) zeros += a.y.at(i) == 0.0;
      CHECK(zeros > 0);
      CHECK(zeros < a.y.numel());
    }
  });
}
