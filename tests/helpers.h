// tests/helpers.h - shared test utilities: seeded random tensors, comparisons,
// scratch paths, and the float64 finite-difference gradient checker.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "losses/losses.h"
#include "engine/tensor.h"

namespace simclr::test {

// Uniform in [lo, hi), deterministic from seed.
inline Tensor rand_tensor(const Shape& s, uint64_t seed, double lo = -1.0, double hi = 1.0,
                          DType dt = DType::f64) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  Tensor t = Tensor::empty(s, DType::f64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); i++) p[i] = u(g);
  return dt == DType::f64 ? t : t.to(dt);
}

inline double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); i++) m = std::max(m, std::abs(t.at(i)));
  return m;
}

// max_i |a_i - b_i| / max(max_i |b_i|, floor): normwise relative error;
// infinite when any difference is NaN (a NaN-poisoned element nobody wrote
// must not vanish in a max).
inline double rel_err(const Tensor& a, const Tensor& b, double floor = 1e-12) {
  REQUIRE(a.numel() == b.numel());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); i++) {
    const double d = std::abs(a.at(i) - b.at(i));
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m / std::max(max_abs(b), floor);
}

// A fresh scratch directory under the build tree, removed first if present.
inline std::string scratch_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(SIMCLR_TEST_TMP) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// Gradient check in float64: f maps the inputs to one output tensor. A fixed
// random cotangent r turns it into the scalar L = Σ f(x)·r; backward's dL/dx
// for every input that requires grad is compared with central differences
// (L(x + h e_j) - L(x - h e_j)) / 2h over every element j. Returns the worst
// normwise relative error over the inputs.
inline double gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                        double h = 1e-6, uint64_t seed = 1234) {
  for (Tensor& x : inputs) REQUIRE(x.dtype() == DType::f64);
  Tensor y0;
  {
    NoGrad ng;
    y0 = f(inputs);
  }
  Tensor r = rand_tensor(y0.shape(), seed);
  for (Tensor& x : inputs) x.set_grad(Tensor());
  Tensor loss = sum_product(f(inputs), r);
  backward(loss);
  double worst = 0;
  for (Tensor& x : inputs) {
    if (!x.requires_grad()) continue;
    Tensor analytic = x.grad();
    REQUIRE(analytic.defined());
    Tensor numeric = Tensor::zeros(x.shape(), DType::f64);
    double* xp = x.data<double>();
    NoGrad ng;
    for (int64_t j = 0; j < x.numel(); j++) {
      double keep = xp[j];
      xp[j] = keep + h;
      double lp = sum_product(f(inputs), r).item();
      xp[j] = keep - h;
      double lm = sum_product(f(inputs), r).item();
      xp[j] = keep;
      numeric.data<double>()[j] = (lp - lm) / (2 * h);
    }
    worst = std::max(worst, rel_err(analytic, numeric));
  }
  return worst;
}

// Runs f(in) with L = Σ f(in)·r, back-propagates, and returns the gradients
// of the inputs (their old gradients dropped first).
inline std::vector<Tensor> grads_of(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                    std::vector<Tensor> in, const Tensor& r) {
  for (Tensor& t : in) t.set_grad(Tensor());
  backward(sum_product(f(in), r));
  std::vector<Tensor> g;
  for (Tensor& t : in) g.push_back(t.grad());
  return g;
}

}  // namespace simclr::test
