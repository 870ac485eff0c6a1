// tests/emu/test_step_bf16_emu.cpp - the bf16 training step on the emulated
// device (our CUDA kernels, bf16) against the fp32 step on the CPU backend,
// and bf16 training that learns: tests/step_bf16_case.h (the model, the
// bounds and their reasons, shared with the CPU backend's bf16 kernels).
// Measured values print with STEP_EMU_VERBOSE=1.
#include <catch2/catch.hpp>

#include "engine/device.h"
#include "tests/step_bf16_case.h"
#include "train/trainer.h"

using namespace simclr;
using namespace simclr::test::step_case;

TEST_CASE("bf16 step on the emulated device against the fp32 CPU step", "[emu][step][bf16]") {
  check_bf16_step_against_fp32_cpu(Device::emu());
}

TEST_CASE("bf16 training on the emulated device learns like fp32 on the CPU", "[emu][step][bf16]") {
  check_bf16_learns_like_fp32_cpu(Device::emu());
}

TEST_CASE("train.precision bf16: allowed on the emulated device and on the CPU", "[emu][bf16]") {
  TrainConfig tc;
  tc.precision = "bf16";
  CHECK_NOTHROW(apply_precision(tc, Device::emu()));
  CHECK_NOTHROW(apply_precision(tc, Device::cpu()));
  tc.precision = "fp32";
  CHECK_NOTHROW(apply_precision(tc, Device::cpu()));
}

