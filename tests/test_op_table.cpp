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
#include "op_table_run.h"

using namespace simclr;
using namespace simclr::test;

namespace {

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
    case Op::cast:  // f64 -> f32 (one rounding) -> [bf16 (RNE)] -> back, exact widening
      return map([&](int64_t i) {
        const float f = static_cast<float>(x.at(i));
        return c.opt.cast_to == DType::bf16 ? static_cast<double>(static_cast<float>(bf16(f))) : static_cast<double>(f);
      });
    case Op::COUNT: break;
  }
  FAIL("no reference for op " << op_name(c.op));
  return Tensor();
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
      if (!supports(DeviceKind::cuda, op, dt) && !supports(DeviceKind::emu, op, dt)) continue;
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
    if (c.dev.on()) CHECK((supports(DeviceKind::cuda, c.op, c.dtype) || supports(DeviceKind::emu, c.op, c.dtype)));
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

TEST_CASE("op table (e): the CPU backend's bf16 kernels against float64, forward and gradients", "[optable][bf16]") {
  // The dev rows in bf16 of every op the CPU backend has in bf16 (train.precision
  // bf16 on the CPU), with the dev tolerances and their reasons: the CPU's bf16
  // kernels keep the CUDA twins' convention (bf16 loads and stores, f32 arithmetic,
  // BN mean/invstd stored in bf16; convolutions in oneDNN's bf16 kernels with f32
  // accumulation, or f32 on widened operands where the CPU has no bf16 kernel).
  CpuAllocDebug debug;
  CHECK(test::run_op_rows_on(Device::cpu(), DType::bf16) >= 10);
  // every (op, bf16) the CPU table claims, the cast aside (mode (b)), has such a row
  for (int i = 0; i < static_cast<int>(Op::COUNT); i++) {
    const Op op = static_cast<Op>(i);
    if (op == Op::cast || !supports(DeviceKind::cpu, op, DType::bf16)) continue;
    INFO("op " << op_name(op) << " has a CPU bf16 row but no bf16 dev row");
    const auto& rows = op_cases();
    CHECK(std::any_of(rows.begin(), rows.end(),
                      [&](const OpCase& c) { return c.op == op && c.dtype == DType::bf16 && c.dev.on(); }));
  }
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
