// tests/step_case.h - one whole SimCLR training step on a device (the
// emulated device, tests/emu/test_step_emu.cpp, or a GPU,
// tests/gpu/test_step_gpu.cpp) against the same step on the CPU backend: the
// loss, every gradient and the weights after the LARS update.
//
// Model: ResNet-18 at width 0.125 with the CIFAR stem (channels 8/16/32/64),
// 16x16 RGB input, the 2-layer projection head with BN (z 32-d), 8 images =
// 16 views, tau 0.2, LARS (momentum 0.9, eta 0.001, weight decay 1e-6, BN and
// biases excluded) at lr 0.5, the same initial weights on both devices.
//
// Tolerances, derived (both sides are float32; what differs is the order of
// the sums and the NT-Xent kernels' arithmetic):
//   - NT-Xent on the device computes fp32 similarities as bf16x3 (kernels/
//     ntxent.h): each similarity within ~2^-15 of the exact one (the op table's
//     kDevF32 row), the per-row loss within 2^-15/tau; the loss is an average,
//     so |Δloss|/loss <= 2^-15/(tau·loss) ≈ 5e-5 here (loss ≈ 2.9).
//   - gradients: dz within 5e-5 of its largest entry (kDevF32), carried back
//     through 20 layers whose f32 GEMMs/BN reductions each add K·2^-24
//     relative in another order (K <= 576): per tensor, normwise, 1e-3 allows
//     the dz error times a backward amplification of ~20; a wrong kernel
//     (wrong tap, missing term) is O(1).
//   - the update Δw = after - before, normwise per tensor against |Δw| (the
//     trust ratio makes it O(lr·eta·|w|) for adapted tensors): it follows the
//     gradient's error, 1e-3 again. Comparing the update (not the weights,
//     which move by ~1e-3 relative) is what makes a missing trust ratio or a
//     skipped tensor fail.
// The measured errors are printed with STEP_EMU_VERBOSE=1.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "kernels/registry.h"
#include "optim/lars.h"
#include "tests/helpers.h"
#include "train/model.h"
#include "train/step.h"

using namespace simclr;

namespace simclr::test::step_case {

inline ResNetConfig small_resnet() {
  ResNetConfig c;
  c.depth = 18;
  c.width = 0.125;
  c.stem = "cifar";
  c.in_channels = 3;
  return c;
}

inline HeadConfig small_head() {
  HeadConfig h;
  h.out = 32;
  return h;
}

inline Tensor random_views(int64_t views, int64_t size, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(static_cast<size_t>(views * size * size * 3));
  for (float& x : v) x = nd(g);
  return Tensor::from_vector(v, {views, size, size, 3});
}

// max_i |a_i - b_i| / max_i |b_i| over a range of two flat host float vectors.
inline double rel(const std::vector<float>& a, const std::vector<float>& b, int64_t off, int64_t n) {
  double d = 0, m = 0;
  for (int64_t i = off; i < off + n; i++) {
    const double x = a[static_cast<size_t>(i)], y = b[static_cast<size_t>(i)];
    if (!std::isfinite(x)) return INFINITY;
    d = std::max(d, std::abs(x - y));
    m = std::max(m, std::abs(y));
  }
  return m > 0 ? d / m : d;
}

struct StepOut {
  double loss = 0;
  std::vector<float> before, grads, after;
};

inline StepOut run_step(Device device, const Tensor& views, int steps = 1) {
  HeadConfig hc = small_head();
  SimclrModel model(small_resnet(), &hc);
  model.init(7);
  model.to(device);
  LarsConfig lc;  // momentum 0.9, eta 0.001, weight decay 1e-6
  Lars lars(lc, model.store);
  StepOut out;
  out.before = model.store.values().to_floats();
  const Tensor v = views.to(device);
  for (int s = 0; s < steps; s++) {
    StepResult r = wait_result(train_step(v, model, lars, 0.5, 0.2), lars);
    REQUIRE(r.updated);
    out.loss = r.loss;
  }
  out.grads = model.store.grads().to_floats();
  out.after = model.store.values().to_floats();
  CHECK(model.store.values().device() == device);
  return out;
}

inline bool verbose() { return std::getenv("STEP_EMU_VERBOSE") != nullptr; }

// Runs the step on `device` and on the CPU and checks the loss (relative),
// every gradient and every update (normwise per tensor) within the tolerances.
inline void check_step_matches_cpu(Device device, double loss_tol, double grad_tol, double update_tol) {
  const Tensor views = random_views(16, 16, 11);
  const StepOut cpu = run_step(Device::cpu(), views);
  const StepOut dev = run_step(device, views);
  const double loss_err = std::abs(dev.loss - cpu.loss) / std::abs(cpu.loss);
  if (verbose()) std::printf("loss cpu %.8f %s %.8f rel %.3g\n", cpu.loss, device.str().c_str(), dev.loss, loss_err);
  CHECK(std::isfinite(dev.loss));
  CHECK(loss_err <= loss_tol);

  // Per parameter tensor: the gradient and the update.
  HeadConfig hc = small_head();
  SimclrModel layout(small_resnet(), &hc);
  int64_t off = 0;
  double worst_g = 0, worst_u = 0;
  int checked = 0;
  for (const Param& p : layout.store.params()) {
    if (!p.trainable()) continue;
    const int64_t n = p.shape.numel();
    INFO(p.name);
    const double eg = rel(dev.grads, cpu.grads, off, n);
    std::vector<float> du_cpu(static_cast<size_t>(n)), du_dev(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
      const size_t k = static_cast<size_t>(off + i);
      du_cpu[static_cast<size_t>(i)] = cpu.after[k] - cpu.before[k];
      du_dev[static_cast<size_t>(i)] = dev.after[k] - dev.before[k];
    }
    const double eu = rel(du_dev, du_cpu, 0, n);
    if (verbose()) std::printf("%-40s grad %.3g update %.3g\n", p.name.c_str(), eg, eu);
    CHECK(eg <= grad_tol);
    CHECK(eu <= update_tol);
    worst_g = std::max(worst_g, eg);
    worst_u = std::max(worst_u, eu);
    off += n;
    checked++;
  }
  CHECK(off == static_cast<int64_t>(cpu.grads.size()));
  CHECK(checked > 60);  // ResNet-18 + head: every conv, BN and linear tensor
  if (verbose()) std::printf("worst: grad %.3g update %.3g over %d tensors\n", worst_g, worst_u, checked);
}

}  // namespace simclr::test::step_case

