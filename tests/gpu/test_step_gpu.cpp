// tests/gpu/test_step_gpu.cpp - a whole SimCLR training step on the GPU (fp32,
// cuDNN convolutions without TF32, our BN/pool/elementwise kernels, cuBLASLt
// linear layers, the fused NT-Xent and LARS kernels) against the same step
// on the CPU backend (tests/step_case.h: the model, the tolerances and their
// derivation; the GPU's sums run in other orders than the emulator's, within
// the same budget), and the same with our own convolution kernels
// (train.conv_impl = ours). Prints "SKIPPED: <reason>" without a device.
#include <catch2/catch.hpp>

#include "engine/device.h"
#include "kernels/registry.h"
#include "tests/skip.h"
#include "tests/step_case.h"

using namespace simclr;

TEST_CASE("gpu: a whole SimCLR step on the GPU equals the CPU step", "[gpu][step]") {
  SKIP_WITHOUT_GPU();
  REQUIRE(supports(DeviceKind::cuda, Op::conv2d, DType::f32));
  test::step_case::check_step_matches_cpu(Device::cuda(0), 5e-5, 1e-3, 1e-3);
}
