// tests/test_step_bf16_cpu.cpp - train.precision bf16 on the CPU backend: the
// bf16 step against the fp32 step, and bf16 training that learns
// (tests/step_bf16_case.h: the model, the bounds and their reasons, the same
// as for the emulated CUDA kernels). The convolutions are oneDNN's bf16
// kernels where the CPU has AVX512-BF16/AMX, else f32 on widened operands
// (kernels/conv2d.h); the test says which ran. STEP_EMU_VERBOSE=1 prints the
// measured values.
#include <catch2/catch.hpp>

#include <cstdio>

#include "kernels/conv2d.h"
#include "tests/step_bf16_case.h"

using namespace simclr;
using namespace simclr::test::step_case;

namespace {
void say_conv_path() {
  const Conv2dShape s{16, 16, 16, 8, 8, 3, 3, 1, 1};
  const bool fast = cpu::conv2d_fast_available() && cpu::conv2d_fast_supports(s, DType::bf16);
  std::printf("CPU bf16 convolutions: %s\n", fast ? cpu::conv2d_fast_info(s, DType::bf16).c_str()
                                                   : "f32 on widened operands (no optimised oneDNN bf16 kernel here)");
}
}  // namespace

TEST_CASE("bf16 step on the CPU against the fp32 CPU step", "[step][bf16]") {
  say_conv_path();
  check_bf16_step_against_fp32_cpu(Device::cpu());
}

TEST_CASE("bf16 training on the CPU learns like fp32", "[step][bf16]") {
  check_bf16_learns_like_fp32_cpu(Device::cpu());
}
