// tests/emu/test_step_emu.cpp - a whole SimCLR training step on the emulated
// device (engine/dtype.h Device::emu(): every op through the CUDA backend's
// table, wrappers, launchers and kernels, run on the CPU by the kernel
// emulator) against the same step on the CPU backend (tests/step_case.h: the
// model, the tolerances and their derivation).
#include <catch2/catch.hpp>

#include "engine/device.h"
#include "kernels/registry.h"
#include "tests/step_case.h"

using namespace simclr;

TEST_CASE("a whole SimCLR step on the emulated device equals the CPU step", "[emu][step]") {
  if (!supports(DeviceKind::emu, Op::conv2d, DType::f32) || !supports(DeviceKind::emu, Op::batch_norm, DType::f32))
    FAIL("the CUDA backend's table lacks conv2d or batch_norm: the step cannot run on the emulated device");
  test::step_case::check_step_matches_cpu(Device::emu(), 5e-5, 1e-3, 1e-3);
}

TEST_CASE("the emulated device refuses host access like a GPU", "[emu][step]") {
  Tensor t = Tensor::zeros({4}, DType::f32, Device::emu());
  CHECK(t.device().str() == "emu");
  CHECK(Device::parse("emu") == Device::emu());
  CHECK_THROWS(t.data<float>());
  CHECK(t.to(Device::cpu()).data<float>()[0] == 0.0f);
  t.fill(2.5);
  CHECK(t.to(Device::cpu()).at(3) == 2.5);
}
