// tests/test_ntxent.cpp - the special tests of the NT-Xent CPU reference
// (kernels/cpu/ntxent.cpp) and the ntxent op on the CPU that are not rows of
// the op table (tests/op_table_cases.h has the float64 gradient checks, f32
// against f64, the naive loop and the composite of primitive ops): closed
// forms (d = 1, identical, orthogonal and paired-orthogonal embeddings), a
// hand-checkable example, the distributed form (R simulated ranks) against
// one device, and the errors.
#include <cmath>
#include <vector>

#include "helpers.h"
#include "kernels/ntxent.h"
#include "losses/ntxent_composite.h"

using namespace simclr;
using simclr::test::rand_tensor;
using simclr::test::rel_err;

namespace {

double loss_of(const Tensor& z, double tau) {
  NoGrad ng;
  return ntxent(z, tau).item();
}

// dL/dz of the op (dloss = 1).
Tensor grad_of(const Tensor& z0, double tau) {
  Tensor z = z0.clone().set_requires_grad();
  backward(ntxent(z, tau));
  return z.grad();
}

}  // namespace

TEST_CASE("ntxent: d = 1 has a zero gradient and a scale-free loss", "[ntxent]") {
  // d = 1: ẑ = sign(z) is locally constant, so the gradient is exactly 0
  // (a relative finite-difference check would only compare noise with noise).
  Tensor z1 = rand_tensor({10, 1}, 9, 0.1, 1.0);
  for (int i = 0; i < 10; i += 3) z1.data<double>()[i] *= -1;
  CHECK(simclr::test::max_abs(grad_of(z1, 0.2)) < 1e-12);
  CHECK(std::abs(loss_of(z1, 0.2) - loss_of(scale(z1, 3.0), 0.2)) < 1e-12);
}

TEST_CASE("ntxent: identical embeddings give log(V-1) and zero gradient", "[ntxent]") {
  for (int64_t V : {2, 4, 10}) {
    const int64_t D = 7;
    std::vector<double> v(static_cast<size_t>(V * D));
    for (int64_t i = 0; i < V; i++)
      for (int64_t c = 0; c < D; c++) v[i * D + c] = (c + 1) * 0.3 * (1.0 + 0.5 * i);  // same direction, any scale
    Tensor z = Tensor::from_vector(v, {V, D});
    for (double tau : {0.05, 0.5}) {
      INFO("V=" << V << " tau=" << tau);
      CHECK(std::abs(loss_of(z, tau) - std::log(static_cast<double>(V - 1))) < 1e-12);
      CHECK(simclr::test::max_abs(grad_of(z, tau)) < 1e-12);
    }
  }
}

TEST_CASE("ntxent: orthogonal embeddings, closed-form loss and gradient", "[ntxent]") {
  // z_i = a_i e_{σ(i)} with distinct basis vectors: every s_ik = 0 (k ≠ i), so
  // ℓ_i = log(V-1), and dL/dz_i = 1/(Vτ a_i) [ (2/(V-1)) Σ_{k≠i} e_σ(k) - 2 e_σ(p(i)) ]
  // (already orthogonal to ẑ_i, so the normalisation passes it through / a_i).
  const int64_t V = 6, D = 9, N = V / 2;
  const int sigma[V] = {4, 0, 7, 2, 8, 5};
  const double a[V] = {1.0, 2.5, 0.3, 4.0, 1.7, 0.9};
  Tensor z = Tensor::zeros({V, D}, DType::f64);
  for (int64_t i = 0; i < V; i++) z.data<double>()[i * D + sigma[i]] = a[i];
  for (double tau : {0.05, 0.1, 0.5}) {
    INFO("tau=" << tau);
    CHECK(std::abs(loss_of(z, tau) - std::log(5.0)) < 1e-12);
    Tensor g = grad_of(z, tau);
    Tensor want = Tensor::zeros({V, D}, DType::f64);
    for (int64_t i = 0; i < V; i++) {
      double* w = want.data<double>() + i * D;
      for (int64_t k = 0; k < V; k++)
        if (k != i) w[sigma[k]] += 2.0 / (V - 1);
      w[sigma[(i + N) % V]] -= 2.0;
      for (int64_t c = 0; c < D; c++) w[c] /= V * tau * a[i];
    }
    CHECK(rel_err(g, want) < 1e-12);
  }
}

TEST_CASE("ntxent: orthogonal pairs (each positive identical) closed form", "[ntxent]") {
  // z_i = z_p(i) = e_(i mod N): s_ip = 1, every other s = 0, so
  // ℓ_i = log(e^{1/τ} + V - 2) - 1/τ for every row.
  const int64_t N = 5, V = 2 * N, D = 6;
  Tensor z = Tensor::zeros({V, D}, DType::f64);
  for (int64_t i = 0; i < V; i++) z.data<double>()[i * D + (i % N)] = 1.0 + 0.1 * i;
  for (double tau : {0.05, 0.1, 0.5, 1.0}) {
    const double want = std::log(std::exp(1.0 / tau) + (V - 2)) - 1.0 / tau;
    CHECK(std::abs(loss_of(z, tau) - want) < 1e-12 * std::max(1.0, std::abs(want)));
  }
}

TEST_CASE("ntxent: hand-checkable 4-view example", "[ntxent]") {
  // τ = 0.5; z0 = (1,0), z1 = (0,2), z2 = (3,4), z3 = (-1,0); N = 2, so the
  // positives are 0<->2 and 1<->3. ẑ = (1,0), (0,1), (0.6,0.8), (-1,0), so
  //   s01 = 0, s02 = 0.6, s03 = -1, s12 = 0.8, s13 = 0, s23 = -0.6
  // and with s/τ: ℓ0 = log(e^0 + e^1.2 + e^-2) - 1.2, ℓ1 = log(e^0 + e^1.6 + e^0) - 0,
  //               ℓ2 = log(e^1.2 + e^1.6 + e^-1.2) - 1.2, ℓ3 = log(e^-2 + e^0 + e^-1.2) - 0.
  using std::exp;
  using std::log;
  const double l0 = log(1 + exp(1.2) + exp(-2.0)) - 1.2, l1 = log(2 + exp(1.6));
  const double l2 = log(exp(1.2) + exp(1.6) + exp(-1.2)) - 1.2, l3 = log(exp(-2.0) + 1 + exp(-1.2));
  // numerically: 0.29413, 1.93918, 0.94877, 0.36223 -> mean 0.88608
  Tensor z = Tensor::from_vector<double>({1, 0, 0, 2, 3, 4, -1, 0}, {4, 2});
  CHECK(std::abs(loss_of(z, 0.5) - (l0 + l1 + l2 + l3) / 4) < 1e-14);
  CHECK(std::abs(loss_of(z, 0.5) - 0.886078) < 1e-6);
  std::vector<double> rows(4), lse(4);
  cpu::ntxent_forward(rows.data(), lse.data(), z.data<double>(), 4, 2, 0.5, 0, 4);
  CHECK(std::abs(rows[0] - l0) < 1e-14);
  CHECK(std::abs(rows[3] - l3) < 1e-14);
  CHECK(std::abs(lse[1] - log(2 + exp(1.6))) < 1e-14);
  // two views only: the positive is the only key, every ℓ is exactly 0
  Tensor two = Tensor::from_vector<double>({1, 2, 3, -3, 0.5, 1}, {2, 3});
  CHECK(std::abs(loss_of(two, 0.1)) < 1e-12);
}

TEST_CASE("ntxent: distributed form with R simulated ranks equals one device", "[ntxent][distributed]") {
  const int64_t V = 22, D = 5;
  const double tau = 0.1;
  Tensor z = rand_tensor({V, D}, 77);
  const double* zp = z.data<double>();
  // single device
  std::vector<double> loss1(V), lse1(V), dz1(V * D, 0.25);
  cpu::ntxent_forward(loss1.data(), lse1.data(), zp, V, D, tau, 0, V);
  cpu::ntxent_backward(dz1.data(), zp, lse1.data(), 1.7, V, D, tau, 0, V);
  for (int R : {2, 3, 5}) {
    INFO("ranks " << R);
    // uneven row split: rank r owns [b[r], b[r+1])
    std::vector<int64_t> b(R + 1);
    for (int r = 0; r <= R; r++) b[r] = (V * r * r) / (R * R);
    // forward on each rank, then "all-gather" lse and sum the partial losses
    std::vector<double> lse(V), loss_rows(V);
    for (int r = 0; r < R; r++)
      cpu::ntxent_forward(loss_rows.data() + b[r], lse.data() + b[r], zp, V, D, tau, b[r], b[r + 1]);
    double total = 0, total1 = 0;
    for (int64_t i = 0; i < V; i++) total += loss_rows[i], total1 += loss1[i];
    CHECK(std::abs(total - total1) <= 1e-14 * std::abs(total1));
    for (int64_t i = 0; i < V; i++) CHECK(lse[i] == lse1[i]);
    // backward of each rank's own rows from the gathered lse: the complete gradient
    std::vector<double> dz(V * D, 0.25);
    for (int r = 0; r < R; r++)
      cpu::ntxent_backward(dz.data() + b[r] * D, zp, lse.data(), 1.7, V, D, tau, b[r], b[r + 1]);
    for (int64_t i = 0; i < V * D; i++) CHECK(dz[i] == dz1[i]);
  }
  // and the single-device gradient is the op's (dloss = 1.7, accumulated onto 0.25)
  Tensor g = grad_of(z, tau);
  double worst = 0;
  for (int64_t i = 0; i < V * D; i++) worst = std::max(worst, std::abs((dz1[i] - 0.25) / 1.7 - g.at(i)));
  CHECK(worst < 1e-12);
}

TEST_CASE("ntxent_composite: bad arguments are clear errors", "[ntxent]") {
  CHECK_THROWS_WITH(ntxent_composite(rand_tensor({3, 4}, 1), 0.1), Catch::Contains("even number"));
  CHECK_THROWS_WITH(ntxent_composite(rand_tensor({4, 4}, 1), 0.0), Catch::Contains("temperature"));
  CHECK_THROWS_WITH(ntxent_composite(rand_tensor({4}, 1), 0.1), Catch::Contains("2-D"));
}

TEST_CASE("ntxent: bad arguments are clear errors", "[ntxent]") {
  CHECK_THROWS_WITH(ntxent(rand_tensor({3, 4}, 1), 0.1), Catch::Contains("even number"));
  CHECK_THROWS_WITH(ntxent(rand_tensor({4, 4}, 1), 0.0), Catch::Contains("temperature"));
  CHECK_THROWS_WITH(ntxent(rand_tensor({4}, 1), 0.1), Catch::Contains("2-D"));
  CHECK_THROWS_WITH(ntxent(rand_tensor({4, 3}, 1, -1, 1, DType::bf16), 0.1), Catch::Contains("not supported"));
}
