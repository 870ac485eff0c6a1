// tests/step_bf16_case.h - the bf16 training step (train.precision: bf16,
// SimclrModel::compute_dtype) on a device against the fp32 step on the CPU
// backend, and bf16 training that learns: shared by the emulated device
// (tests/emu/test_step_bf16_emu.cpp: our CUDA kernels) and the CPU backend's
// own bf16 kernels (tests/test_step_bf16_cpu.cpp: oneDNN's bf16 convolutions
// where the CPU has AVX512-BF16/AMX, bf16 storage with f32 arithmetic
// elsewhere, kernels/cpu/acc.h). Both follow the same convention (fp32
// arithmetic, bf16 at loads and stores), so the bounds below and their
// reasons hold for both.
//
// The bf16 step: views cast to bf16, every conv/linear weight and BN γ/β cast
// from its f32 master to bf16 in the forward (ops/cast.cpp; the gradient
// flows back through the cast into the f32 gradient buffer), BN running
// statistics f32, z cast back to f32 for the fp32 NT-Xent; LARS on f32.
//
// Tolerances of the one-step comparison (tests/step_case.h's model: ResNet-18
// width 0.125, 16x16, 16 views, tau 0.2):
//   - loss: every conv/linear rounds its input, weight and output to bf16
//     (2^-9 relative each, ~3·2^-9 = 6e-3 per layer); BN renormalises each
//     layer and the roundings of ~20 layers are independent, adding in
//     quadrature: ~sqrt(20)·6e-3 = 2.6e-2 on z; the loss averages lse(s/τ) -
//     s_p/τ over rows whose errors have both signs: 3e-2 relative (measured
//     3.9e-3).
//   - gradients: NOT normwise near 1e-2. At this batch (16 rows per BN) the
//     one-step gradient is ill-conditioned: rounding only the views to bf16,
//     the rest fp32 on the CPU, moves the fp32 gradients by 13-45% normwise
//     per tensor (measured), so no bf16 step can be held to ~1e-2 there; the
//     emulated fp32 step on those rounded views matches the CPU at <= 1.1e-5
//     (the emulation itself is exact enough). So the test bounds direction
//     and size: per conv/linear weight (whose gradient comes back through the
//     cast) cos >= 0.8 and norm ratio within 1.25 (measured cos >= 0.913,
//     ratio 0.97-1.03); per BN γ/β (small, cancelling gradients) cos >= 0.2,
//     ratio within 4 (measured worst 0.34 / 0.33, layer1.1.bn2); the whole
//     gradient cos >= 0.85 (measured 0.929, norm ratio 0.975). A dropped cast
//     gradient gives cos 0, a doubled one ratio 2, a sign error cos -1.
// The learning check: a tiny model memorising one fixed batch for 30 steps,
// bf16 on emu against fp32 on the CPU (measured 3.79 -> 0.0083 against
// 3.83 -> 0.0079). Measured values print with STEP_EMU_VERBOSE=1.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/device.h"
#include "kernels/registry.h"
#include "tests/step_case.h"
#include "train/trainer.h"

namespace simclr::test::step_case {

// Gradient bounds per tensor (measured at this model and seed, STEP_EMU_VERBOSE=1): conv and
// linear weights (the tensors whose gradient comes back through the new cast) cos >= 0.913,
// norm ratio 0.97-1.03; BN gamma/beta, whose small gradients are the most ill-conditioned
// (sums over 16 rows with cancellation), down to cos 0.34 and norm ratio 0.33 (layer1.1.bn2).
constexpr double kMinCosWeight = 0.8, kMaxRatioWeight = 1.25;
constexpr double kMinCosBn = 0.2, kMaxRatioBn = 4.0;
constexpr double kMinCosAll = 0.85;  // the whole gradient vector

struct Run {
  std::vector<double> losses;
  std::vector<float> grads;
};

Run run_steps(Device device, DType compute, const ResNetConfig& rc, const HeadConfig& hc, const Tensor& views,
              int steps, double lr) {
  HeadConfig h = hc;
  SimclrModel model(rc, &h);
  model.init(7);
  model.to(device);
  model.compute_dtype = compute;
  LarsConfig lc;
  Lars lars(lc, model.store);
  const Tensor v = views.to(device);
  Run out;
  for (int s = 0; s < steps; s++) {
    StepResult r = wait_result(train_step(v, model, lars, lr, 0.2), lars);
    out.losses.push_back(r.loss);
    if (!r.updated) break;
  }
  out.grads = model.store.grads().to_floats();
  // the masters, their gradients and the BN statistics stay f32
  CHECK(model.store.values().dtype() == DType::f32);
  CHECK(model.store.grads().dtype() == DType::f32);
  return out;
}

inline void check_bf16_step_against_fp32_cpu(Device device) {
  const Tensor views = random_views(16, 16, 11);
  const ResNetConfig rc = small_resnet();
  const HeadConfig hc = small_head();
  const Run cpu = run_steps(Device::cpu(), DType::f32, rc, hc, views, 1, 0.5);
  const Run dev = run_steps(device, DType::bf16, rc, hc, views, 1, 0.5);
  REQUIRE(cpu.losses.size() == 1);
  REQUIRE(dev.losses.size() == 1);
  const double loss_err = std::abs(dev.losses[0] - cpu.losses[0]) / std::abs(cpu.losses[0]);
  if (verbose()) std::printf("loss cpu f32 %.6f %s bf16 %.6f rel %.3g\n", cpu.losses[0], device.str().c_str(), dev.losses[0], loss_err);
  CHECK(std::isfinite(dev.losses[0]));
  CHECK(loss_err <= 3e-2);
  // The gradients, per tensor: direction (cosine) and size (norm ratio). See the header: at this
  // batch the one-step gradient is ill-conditioned (rounding the views alone to bf16 moves the
  // fp32 gradients by 13-45% normwise per tensor), so normwise bounds near 1e-2 are unattainable
  // for any bf16 step; a dropped or doubled gradient (cast backward, accumulation) gives cos 0 or
  // a norm ratio of 0 or 2, a sign error cos -1.
  HeadConfig h = hc;
  SimclrModel layout(rc, &h);
  int64_t off = 0;
  double worst_cos = 1, worst_ratio = 1;
  int checked = 0, exact = 0;
  for (const Param& p : layout.store.params()) {
    if (!p.trainable()) continue;
    const int64_t n = p.shape.numel();
    INFO(p.name);
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = off; i < off + n; i++) {
      const double a = dev.grads[static_cast<size_t>(i)], b = cpu.grads[static_cast<size_t>(i)];
      REQUIRE(std::isfinite(a));
      ab += a * b, aa += a * a, bb += b * b;
    }
    const double cosv = ab / std::sqrt(aa * bb), ratio = std::sqrt(aa / bb);
    const double e = rel(dev.grads, cpu.grads, off, n);
    if (verbose()) std::printf("%-40s grad normwise %.3g cos %.4f norm ratio %.4f\n", p.name.c_str(), e, cosv, ratio);
    const bool bn = p.name.find("bn") != std::string::npos || p.name.find("downsample.1") != std::string::npos ||
                    p.name == "head.1.weight" || p.name == "head.1.bias" || p.name == "head.4.weight";
    const double min_cos = bn ? kMinCosBn : kMinCosWeight, max_ratio = bn ? kMaxRatioBn : kMaxRatioWeight;
    CHECK(cosv >= min_cos);
    CHECK(ratio >= 1 / max_ratio);
    CHECK(ratio <= max_ratio);
    exact += e == 0.0;
    worst_cos = std::min(worst_cos, cosv);
    worst_ratio = std::max({worst_ratio, ratio, 1 / ratio});
    off += n;
    checked++;
  }
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < cpu.grads.size(); i++) {
    const double a = dev.grads[i], b = cpu.grads[i];
    ab += a * b, aa += a * a, bb += b * b;
  }
  const double cos_all = ab / std::sqrt(aa * bb);
  if (verbose()) std::printf("whole gradient: cos %.4f norm ratio %.4f\n", cos_all, std::sqrt(aa / bb));
  CHECK(cos_all >= kMinCosAll);
  CHECK(checked > 60);
  CHECK(exact < checked);  // bf16 differs from fp32 somewhere: the step really ran in bf16
  if (verbose()) std::printf("worst cos %.4f, worst norm ratio %.4f over %d tensors\n", worst_cos, worst_ratio, checked);
}


inline void check_bf16_learns_like_fp32_cpu(Device device) {
  // A tiny model (ResNet-18 width 1/16: channels 4/8/16/32, head 16-d) on a fixed batch of 8
  // views of 8x8: 30 LARS steps drive the NT-Xent loss down (the model memorises the pairs).
  ResNetConfig rc = small_resnet();
  rc.width = 0.0625;
  HeadConfig hc;
  hc.out = 16;
  const Tensor views = random_views(8, 8, 5);
  const int steps = 30;
  const Run cpu = run_steps(Device::cpu(), DType::f32, rc, hc, views, steps, 2.0);
  const Run dev = run_steps(device, DType::bf16, rc, hc, views, steps, 2.0);
  REQUIRE(cpu.losses.size() == static_cast<size_t>(steps));
  REQUIRE(dev.losses.size() == static_cast<size_t>(steps));
  for (double l : dev.losses) CHECK(std::isfinite(l));
  const double c0 = cpu.losses.front(), c1 = cpu.losses.back(), d0 = dev.losses.front(), d1 = dev.losses.back();
  if (verbose())
    for (int s = 0; s < steps; s++) std::printf("step %2d cpu f32 %.5f %s bf16 %.5f\n", s, cpu.losses[s], device.str().c_str(), dev.losses[s]);
  // the same start (one bf16 forward: 3e-2 relative, as above)
  CHECK(std::abs(d0 - c0) <= 3e-2 * c0);
  // fp32 learns (the test's premise), and bf16 learns: its loss falls by at least half of the
  // fp32 drop and ends within a third of that drop of the fp32 loss
  const double drop = c0 - c1;
  REQUIRE(drop > 0.2 * c0);
  CHECK(d0 - d1 >= 0.5 * drop);
  CHECK(std::abs(d1 - c1) <= drop / 3);
}

}  // namespace simclr::test::step_case
