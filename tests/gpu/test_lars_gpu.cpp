// tests/gpu/test_lars_gpu.cpp - the fused LARS kernels on a real GPU: LARS on
// a CUDA parameter store (optim/lars.cpp -> kernels/cuda/lars.cu) against the
// same store on the CPU (the reference kernels/cpu/lars.cpp), with the
// trainable shapes of the ResNet-50 encoder (23.5 M values; BN parameters
// and biases excluded from adaptation), three steps.
// Prints "SKIPPED: <reason>" (ctest: skipped) when there is no device.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/param.h"
#include "models/resnet.h"
#include "optim/lars.h"
#include "tests/skip.h"

using namespace simclr;

namespace {
ParamStore resnet50_like(Device device, uint64_t seed) {
  ResNetConfig rc;
  rc.depth = 50;
  return resnet_trainables_random(rc, device, seed);
}
}  // namespace

TEST_CASE("lars gpu: the fused step on a CUDA store matches the CPU reference (ResNet-50 shapes)", "[gpu][lars]") {
  SKIP_WITHOUT_GPU();
  ParamStore cpu = resnet50_like(Device::cpu(), 3), gpu = resnet50_like(Device::cuda(0), 3);
  REQUIRE(cpu.values().numel() > 20000000);
  LarsConfig cfg;
  Lars a(cfg, cpu), b(cfg, gpu);
  for (double lr : {4.8, 4.7, 2.0}) {
    a.step(lr);
    b.step(lr);
    const std::vector<float> wg = gpu.values().to_floats(), vg = b.state()[0].second.to_floats();
    const float* wc = cpu.values().data<float>();
    const float* vc = a.state()[0].second.data<float>();
    int64_t bad = 0;
    for (size_t i = 0; i < wg.size(); i++) {
      const double tw = std::ldexp(std::abs(static_cast<double>(wc[i])), -22) + 1e-30;
      const double tv = std::ldexp(std::abs(static_cast<double>(vc[i])), -22) + 1e-30;
      if (!(std::abs(wg[i] - wc[i]) <= tw) || !(std::abs(vg[i] - vc[i]) <= tv)) ++bad;
    }
    std::printf("lars gpu lr %.2f: %lld of %zu values outside float rounding\n", lr, static_cast<long long>(bad),
                wg.size());
    CHECK(bad == 0);
    const std::vector<double>& ta = a.last_trust();
    const std::vector<double>& tb = b.last_trust();
    REQUIRE(ta.size() == tb.size());
    for (size_t s = 0; s < ta.size(); s++) CHECK(tb[s] == Approx(ta[s]).epsilon(1e-6));
  }
}
