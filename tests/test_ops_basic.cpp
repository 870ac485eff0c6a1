// tests/test_ops_basic.cpp - hand-computed forward values of the elementwise,
// reduction and linear ops. Their float64 gradient checks, f32 against f64
// and naive-loop forwards are rows of the op table (tests/op_table_cases.h).
#include "helpers.h"

using namespace simclr;
using simclr::test::rand_tensor;

TEST_CASE("relu: forward by hand", "[ops]") {
  Tensor x = rand_tensor({4, 5}, 11, 0.05, 1.0);
  double* p = x.data<double>();
  for (int i = 0; i < 20; i += 2) p[i] = -p[i];
  Tensor y = relu(x);
  CHECK(y.at(0) == 0.0);
  CHECK(y.at(1) == x.at(1));
}

TEST_CASE("mean: forward by hand", "[ops]") {
  Tensor m = mean(Tensor::from_vector<double>({1, 2, 3, 6}, {4}));
  CHECK(m.item() == 3.0);
}

TEST_CASE("linear: forward against a hand computation", "[ops]") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor w = Tensor::from_vector<double>({1, 0, -1, 0.5, 0.5, 0.5}, {2, 3});
  Tensor b = Tensor::from_vector<double>({10, -10}, {2});
  Tensor y = linear(x, w, b);
  CHECK(y.at(0) == 1 - 3 + 10);
  CHECK(y.at(1) == 3 - 10);
  CHECK(y.at(2) == 4 - 6 + 10);
  CHECK(y.at(3) == 7.5 - 10);
}
