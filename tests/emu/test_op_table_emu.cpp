// tests/emu/test_op_table_emu.cpp - mode (c) of the op table
// (tests/op_table_cases.h): every row with a `dev` tolerance that the
// emulator runs (not the GPU-only sizes) executes its CUDA kernel under the
// emulator and is compared with the float64 CPU reference, in guarded,
// NaN-poisoned buffers (tests/ntxent_case.h, tests/guarded.h), with the CPU
// allocator's debug mode on. NTXENT_EMU_VERBOSE=1 prints every row's errors.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "engine/device.h"
#include "kernels/ntxent.h"
#include "tests/ntxent_case.h"

using namespace simclr;

namespace {

NTXENT_KERNEL_SET(EmuKernels, simclr::emu, Device::cpu(), nullptr);

void run_rows(DType dt) {
  CpuAllocDebug debug;
  ntxent_case::run_dev_rows<EmuKernels>(dt, true, "emulated", std::getenv("NTXENT_EMU_VERBOSE") != nullptr,
                                        [](const auto&, const auto&, const auto&) {});
}

}  // namespace

TEST_CASE("op table (c): bf16 CUDA kernels under the emulator match the CPU reference", "[emu][optable]") {
  run_rows(DType::bf16);
}

TEST_CASE("op table (c): fp32 CUDA kernels under the emulator match the CPU reference", "[emu][optable]") {
  run_rows(DType::f32);
}
