// tests/test_cpu_fast.cpp - the fast CPU paths against their references:
// oneDNN convolution (kernels/cpu/conv2d_dnnl.cpp) against the im2col
// reference kernels on the model's shapes and odd ones, with guard bytes
// around every output (tests/guarded.h); the single-sweep f32 batch-norm
// statistics on inputs whose mean dwarfs their spread; and the
// write-instead-of-accumulate gradient paths (a tensor read by several ops
// gets the sum of all). The fused BN+ReLU against relu(batch_norm) and float64
// finite differences is in the op table (tests/op_table_cases.h).
#include <cmath>
#include <random>
#include <vector>

#include "guarded.h"
#include "helpers.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "skip.h"

using namespace simclr;
using simclr::test::Guarded;
using simclr::test::gradcheck;
using simclr::test::grads_of;
using simclr::test::rand_tensor;
using simclr::test::rel_err;

namespace {

// n floats uniform in [-1, 1) from seed
std::vector<float> uniform(int64_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(g);
  return v;
}

std::vector<float> filled(int64_t n, float value) { return std::vector<float>(static_cast<size_t>(n), value); }

// max_i |a_i - b_i| / max_i |b_i| over the payload (NaN: infinite)
double rel(const Guarded<float>& a, const std::vector<double>& b) {
  const std::vector<float> got = a.get();
  double e = 0, m = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double d = std::abs(static_cast<double>(got[i]) - b[i]);
    if (std::isnan(d)) return INFINITY;
    e = std::max(e, d);
    m = std::max(m, std::abs(b[i]));
  }
  return e / std::max(m, 1e-30);
}

std::vector<double> to_double(const Guarded<float>& g, double add = 0) {
  const std::vector<float> v = g.get();
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); i++) d[i] = v[i] + add;
  return d;
}

}  // namespace

// ================================================================ conv2d: oneDNN against the reference

TEST_CASE("conv2d fast path: oneDNN matches the im2col reference, guards intact", "[fast][conv2d]") {
  if (!cpu::conv2d_fast_available())
    SIMCLR_SKIP("conv2d fast path not available (no oneDNN in this build, or SIMCLR_CPU_CONV=reference)");
  struct Case {
    int64_t N, H, W, C, O, k, s, p;
  };
  const std::vector<Case> cases = {
      {8, 28, 28, 1, 16, 3, 1, 1},    // the CIFAR stem on Fashion-MNIST (C = 1)
      {6, 28, 28, 16, 16, 3, 1, 1},   // layer1
      {6, 28, 28, 16, 32, 3, 2, 1},   // layer2.0.conv1 (stride 2)
      {6, 28, 28, 16, 32, 1, 2, 0},   // layer2.0.downsample (1x1 stride 2)
      {5, 7, 7, 64, 128, 3, 2, 1},    // layer4.0.conv1 (7 -> 4)
      {5, 4, 4, 128, 128, 3, 1, 1},   // layer4
      {4, 9, 9, 12, 20, 1, 1, 0},     // 1x1 stride 1 (bottleneck)
      {3, 23, 19, 3, 8, 7, 2, 3},     // ImageNet stem 7x7/2, odd sizes
      {1, 5, 7, 3, 5, 3, 2, 1},       // batch 1, odd sizes
      {2, 6, 5, 7, 3, 5, 3, 2},       // 5x5 stride 3 padding 2, odd channels
  };
  for (const Case& c : cases) {
    INFO("N" << c.N << " H" << c.H << " W" << c.W << " C" << c.C << " O" << c.O << " k" << c.k << " s" << c.s
              << " p" << c.p);
    const cpu::Conv2dShape s{c.N, c.H, c.W, c.C, c.O, c.k, c.k, c.s, c.p};
    REQUIRE(cpu::conv2d_fast_supports(s));  // oneDNN has at least a plain implementation for every shape
    const int64_t nx = s.N * s.H * s.W * s.C, ny = s.N * s.Ho() * s.Wo() * s.O, nw = s.O * s.K();
    const Guarded<float> x(uniform(nx, 1)), w(uniform(nw, 2)), dy(uniform(ny, 3));
    // float32 sums of K = kH*kW*C products (up to 1152 here) in another order than
    // the reference's: relative to the largest value, 2e-5 leaves ~10x margin over
    // the sqrt(K)*2^-24 spread seen, and catches any wrong tap (errors of O(1)).
    const double tol = 2e-5;

    Guarded<float> y_ref(filled(ny, 0.f)), y(filled(ny, 0.f));
    cpu::conv2d_forward(y_ref.data(), x.data(), w.data(), s);
    cpu::conv2d_forward_fast(y.data(), x.data(), w.data(), s);
    CHECK(rel(y, to_double(y_ref)) < tol);
    CHECK(y.guards_intact());

    // backward: reference accumulates into zeros; fast writes dx (=), and accumulates
    // dx and dw (+=) into buffers holding 0.5.
    Guarded<float> dx_ref(filled(nx, 0.f)), dw_ref(filled(nw, 0.f));
    cpu::conv2d_backward(dx_ref.data(), dw_ref.data(), dy.data(), x.data(), w.data(), s);
    Guarded<float> dx_set(filled(nx, 7.f)), dx_acc(filled(nx, 0.5f)), dw_acc(filled(nw, 0.5f));
    cpu::conv2d_backward_fast(dx_set.data(), false, nullptr, dy.data(), x.data(), w.data(), s);
    cpu::conv2d_backward_fast(dx_acc.data(), true, dw_acc.data(), dy.data(), x.data(), w.data(), s);
    CHECK(rel(dx_set, to_double(dx_ref)) < tol);
    CHECK(rel(dx_acc, to_double(dx_ref, 0.5)) < tol);
    CHECK(rel(dw_acc, to_double(dw_ref, 0.5)) < tol);
    CHECK(dx_set.guards_intact());
    CHECK(dx_acc.guards_intact());
    CHECK(dw_acc.guards_intact());
    // dw alone (the stem, whose input needs no gradient)
    Guarded<float> dw_only(filled(nw, 0.f));
    cpu::conv2d_backward_fast(nullptr, false, dw_only.data(), dy.data(), x.data(), w.data(), s);
    CHECK(rel(dw_only, to_double(dw_ref)) < tol);
    CHECK(dw_only.guards_intact());
    CHECK(y_ref.guards_intact());
    CHECK(dx_ref.guards_intact());
    CHECK(dw_ref.guards_intact());
    CHECK(!cpu::conv2d_fast_info(s).empty());
  }
}

TEST_CASE("conv2d fast path: an input read by two convolutions gets both gradients", "[fast][conv2d]") {
  // The second backward finds x.grad filled by the first and must accumulate;
  // f32 (fast path) against f64 (reference path).
  Tensor x = rand_tensor({3, 9, 9, 8}, 11).set_requires_grad();
  Tensor w1 = rand_tensor({8, 3, 3, 8}, 12).set_requires_grad();
  Tensor w2 = rand_tensor({16, 1, 1, 8}, 13).set_requires_grad();
  Tensor r = rand_tensor({3, 5, 5, 16}, 14);
  // a residual block's shape: a 3x3/2 path and a 1x1/2 shortcut from the same input;
  // w2 is read twice as well (its gradient accumulates)
  auto g = [](const std::vector<Tensor>& in) {
    Tensor a = relu(conv2d(in[0], in[1], 2, 1));
    return add(conv2d(a, in[2], 1, 0), conv2d(in[0], in[2], 2, 0));
  };
  auto g64 = grads_of(g, {x, w1, w2}, r);
  Tensor x32 = x.to(DType::f32).set_requires_grad(), w132 = w1.to(DType::f32).set_requires_grad();
  Tensor w232 = w2.to(DType::f32).set_requires_grad();
  auto g32 = grads_of(g, {x32, w132, w232}, r.to(DType::f32));
  // f32 through two stacked convolutions (K <= 72): 1e-5 relative
  for (int i = 0; i < 3; i++) CHECK(rel_err(g32[i], g64[i]) < 1e-5);
  CHECK(gradcheck(g, {x, w1, w2}) <= 1e-6);
}

// ================================================================ single-sweep f32 batch norm

TEST_CASE("batch_norm f32 kernels: many blocks and threads, mean far from zero", "[fast][bn]") {
  // 2 threads x several 128-row blocks; channel means up to 1000 standard deviations
  // from zero (the shifted sums keep the variance accurate); f64 is the reference.
  const int64_t N = 16, H = 12, W = 12, C = 24;
  Tensor x = rand_tensor({N, H, W, C}, 101, -1, 1);
  double* xp = x.data<double>();
  for (int64_t i = 0; i < x.numel(); i++) xp[i] += 1000.0 * static_cast<double>(i % C) / C;
  x.set_requires_grad();
  Tensor g = rand_tensor({C}, 102, 0.5, 1.5).set_requires_grad();
  Tensor b = rand_tensor({C}, 103).set_requires_grad();
  Tensor r = rand_tensor({N, H, W, C}, 104);
  for (bool relu_on : {false, true}) {
    INFO((relu_on ? "fused relu" : "plain"));
    BatchNormOptions opt;
    opt.relu = relu_on;
    Tensor rm64 = Tensor::zeros({C}, DType::f64), rv64 = Tensor::full({C}, 1.0, DType::f64);
    Tensor rm32 = Tensor::zeros({C}, DType::f64), rv32 = Tensor::full({C}, 1.0, DType::f64);
    auto f = [&](Tensor rm, Tensor rv) {
      return [=](const std::vector<Tensor>& in) { return batch_norm(in[0], in[1], in[2], rm, rv, opt); };
    };
    auto g64 = grads_of(f(rm64, rv64), {x, g, b}, r);
    Tensor x32 = x.to(DType::f32).set_requires_grad(), g32 = g.to(DType::f32).set_requires_grad();
    Tensor b32 = b.to(DType::f32).set_requires_grad();
    Tensor y32 = f(rm32, rv32)({x32, g32, b32});
    Tensor y64;
    {
      NoGrad ng;
      y64 = batch_norm(x, g, b, Tensor(), Tensor(), opt);
    }
    // the input itself is f32-rounded at magnitude 1000 (ulp 6e-5 against a spread of
    // 0.58): that, not the kernels, bounds the agreement; 1e-3 is ~5x above it.
    CHECK(rel_err(y32, y64) < 1e-3);
    CHECK(rel_err(rv32, rv64) < 1e-3);  // running variance: 0.9 + 0.1 * var
    auto gg32 = grads_of(f(rm32, rv32), {x32, g32, b32}, r.to(DType::f32));
    for (int i = 0; i < 3; i++) CHECK(rel_err(gg32[i], g64[i]) < 1e-3);
  }
  // the statistics kernel alone on exactly representable data: mean 1000.5, variance 0.25
  std::vector<float> v(static_cast<size_t>(4096 * 3));
  for (size_t i = 0; i < v.size(); i++) v[i] = 1000.f + static_cast<float>((i / 3) % 2);
  double sum[3], sumsq[3];
  cpu::batchnorm_stats(sum, sumsq, v.data(), 4096, 3);
  for (int c = 0; c < 3; c++) {
    const double mean = sum[c] / 4096, var = sumsq[c] / 4096 - mean * mean;
    CHECK(mean == 1000.5);
    CHECK(var == Approx(0.25).epsilon(1e-9));
  }
}

// ================================================================ write-instead-of-accumulate gradients

TEST_CASE("fresh gradients are written, existing ones accumulated", "[fast][autograd]") {
  for (DType dt : {DType::f64, DType::f32}) {
    INFO(dtype_name(dt));
    Tensor x = rand_tensor({4, 3, 3, 5}, 111, -1, 1, dt).set_requires_grad();
    // add(x, x): the second input finds the gradient the first wrote
    Tensor y = add(x, x);
    backward(sum_product(y, Tensor::full(y.shape(), 1.5, dt)));
    for (int64_t i = 0; i < x.numel(); i++) REQUIRE(x.grad().at(i) == 3.0);
    // relu then BN backward into an existing gradient: sums with it
    x.set_grad(Tensor::full(x.shape(), 0.25, dt));
    Tensor r = rand_tensor(x.shape(), 112, -1, 1, dt);
    backward(sum_product(relu(x), r));
    for (int64_t i = 0; i < x.numel(); i++)
      REQUIRE(x.grad().at(i) == Approx(0.25 + (x.at(i) > 0 ? r.at(i) : 0.0)).epsilon(1e-6));
    BatchNormOptions opt;
    x.set_grad(Tensor());
    backward(sum_product(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), opt), r));
    Tensor once = x.grad().clone();
    x.set_grad(Tensor::full(x.shape(), -2.0, dt));
    backward(sum_product(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), opt), r));
    for (int64_t i = 0; i < x.numel(); i++) REQUIRE(x.grad().at(i) == Approx(once.at(i) - 2.0).margin(1e-6));
  }
}
