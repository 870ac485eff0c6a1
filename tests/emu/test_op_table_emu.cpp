// tests/emu/test_op_table_emu.cpp - mode (c) of the op table
// (tests/op_table_cases.h): every row with a `dev` tolerance that the
// emulator runs (not the GPU-only sizes) executes its CUDA kernel under the
// emulator and is compared with the float64 CPU reference.
//   - NT-Xent kernel rows: the fused kernels called directly, in guarded,
//     NaN-poisoned buffers (tests/ntxent_case.h, tests/guarded.h);
//     NTXENT_EMU_VERBOSE=1 prints every row's errors.
//   - every other row: the OP itself on the emulated device (engine/dtype.h
//     Device::emu(): the CUDA backend's table, wrappers, launchers and kernels
//     running on the CPU), forward and backward, against the op in float64 on
//     the CPU (tests/op_table_run.h). The emulated device's memory comes from
//     the CPU allocator, whose debug mode is on: every new block NaN-filled
//     (an element a kernel forgets to write reads as NaN) and guard bytes
//     around it checked after every run. OP_TABLE_VERBOSE=1 prints the errors.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "engine/device.h"
#include "kernels/ntxent.h"
#include "kernels/registry.h"
#include "tests/ntxent_case.h"
#include "tests/op_table_run.h"

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

TEST_CASE("op table (c): ops on the emulated device match the float64 CPU reference", "[emu][optable]") {
  // Every op of the SimCLR step has rows here once its CUDA twin exists
  // (tests/test_op_table.cpp checks that each supported (op, dtype) has one).
  CHECK(test::run_op_rows_on(Device::emu()) > 0);
}
