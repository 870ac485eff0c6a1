// tests/test_ops_basic.cpp - gradient checks (float64 central differences) and
// forward values of the elementwise, reduction and linear ops.
#include "helpers.h"

using namespace simclr;
using simclr::test::gradcheck;
using simclr::test::rand_tensor;

TEST_CASE("relu: forward and gradient", "[ops][gradcheck]") {
  // keep inputs away from the kink at 0
  Tensor x = rand_tensor({4, 5}, 11, 0.05, 1.0);
  double* p = x.data<double>();
  for (int i = 0; i < 20; i += 2) p[i] = -p[i];
  x.set_requires_grad();
  Tensor y = relu(x);
  CHECK(y.at(0) == 0.0);
  CHECK(y.at(1) == x.at(1));
  clear_tape();
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return relu(in[0]); }, {x}) <= 1e-6);
}

TEST_CASE("add, scale, mean: gradients", "[ops][gradcheck]") {
  Tensor a = rand_tensor({3, 4}, 1).set_requires_grad();
  Tensor b = rand_tensor({3, 4}, 2).set_requires_grad();
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return add(in[0], in[1]); }, {a, b}) <= 1e-6);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return scale(in[0], -2.5); }, {a}) <= 1e-6);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return mean(in[0]); }, {a}) <= 1e-6);
  Tensor m = mean(Tensor::from_vector<double>({1, 2, 3, 6}, {4}));
  CHECK(m.item() == 3.0);
}

TEST_CASE("linear: forward against a hand computation, gradients", "[ops][gradcheck]") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor w = Tensor::from_vector<double>({1, 0, -1, 0.5, 0.5, 0.5}, {2, 3});
  Tensor b = Tensor::from_vector<double>({10, -10}, {2});
  Tensor y = linear(x, w, b);
  CHECK(y.at(0) == 1 - 3 + 10);
  CHECK(y.at(1) == 3 - 10);
  CHECK(y.at(2) == 4 - 6 + 10);
  CHECK(y.at(3) == 7.5 - 10);
  Tensor X = rand_tensor({5, 7}, 3).set_requires_grad();
  Tensor W = rand_tensor({4, 7}, 4).set_requires_grad();
  Tensor B = rand_tensor({4}, 5).set_requires_grad();
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {X, W, B}) <= 1e-6);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], Tensor()); }, {X, W}) <= 1e-6);
}

TEST_CASE("f32 ops agree with f64", "[ops]") {
  Tensor x = rand_tensor({6, 9}, 8);
  Tensor w = rand_tensor({3, 9}, 9);
  Tensor y64 = relu(linear(x, w, Tensor()));
  Tensor y32 = relu(linear(x.to(DType::f32), w.to(DType::f32), Tensor()));
  CHECK(simclr::test::rel_err(y32, y64) < 1e-6);
}
