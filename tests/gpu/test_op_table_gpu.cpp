// tests/gpu/test_op_table_gpu.cpp - mode (d) of the op table
// (tests/op_table_cases.h): every row with a `dev` tolerance runs its CUDA
// kernel on a real GPU in guarded, NaN-poisoned device buffers
// (tests/ntxent_case.h, tests/guarded.h), and the engine op on CUDA tensors
// (autograd), both against the float64 CPU reference; the emulated rows
// (tests/emu/test_op_table_emu.cpp) plus sizes that only a GPU runs in
// seconds (4096 views, d = 2048). A row of an op without a GPU runner here
// fails. Prints "SKIPPED: <reason>" (ctest: skipped) when there is no device.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/op_table.h"
#include "kernels/ntxent.h"
#include "losses/losses.h"
#include "tests/ntxent_case.h"
#include "tests/op_table_cases.h"
#include "tests/op_table_run.h"
#include "tests/skip.h"

using namespace simclr;
using simclr::test::OpCase;

namespace {

NTXENT_KERNEL_SET(GpuKernels, simclr::gpu, Device::cuda(0), cuda_current_stream(0));

// The op on a CUDA tensor of the same rounded values, single device (ksplit auto).
template <class T>
ntxent_case::Result run_op(const ntxent_case::Case& c, const ntxent_case::Reference<T>& ref) {
  Tensor z = Tensor::from_vector(ref.z, {c.V, c.D}).to(Device::cuda(0)).set_requires_grad();
  Tensor loss = ntxent(z, c.tau);
  CHECK(loss.dtype() == DType::f32);
  CHECK(loss.device().is_cuda());
  backward(loss);
  const std::vector<float> g = z.grad().to_floats();
  std::vector<double> got(g.size());
  for (size_t i = 0; i < g.size(); i++) got[i] = ref.dloss * g[i];  // the reference is for dloss
  ntxent_case::Result r;
  r.add_grad(ref, got, 0, c.V, c.D);
  r.finish(ref, c, loss.item(), nullptr);
  return r;
}

// The kernels, then the op on CUDA tensors, for every dev row of dtype dt.
void run_rows(DType dt) {
  ntxent_case::run_dev_rows<GpuKernels>(dt, false, "ntxent gpu kernels", true,
                                        [](const ntxent_case::Case& c, const auto& ref, const OpCase& row) {
                                          const ntxent_case::Result o = run_op(c, ref);
                                          ntxent_case::print_result("ntxent gpu op     ", c, o);
                                          ntxent_case::check_result(c, o, row.dev, "gpu op");
                                        });
}

}  // namespace

TEST_CASE("op table (d): bf16 rows on the GPU match the CPU reference", "[gpu][optable]") {
  SKIP_WITHOUT_GPU();
  run_rows(DType::bf16);
}

TEST_CASE("op table (d): fp32 rows on the GPU match the CPU reference", "[gpu][optable]") {
  SKIP_WITHOUT_GPU();
  run_rows(DType::f32);
}

TEST_CASE("op table (d): every other op on CUDA tensors matches the float64 CPU reference", "[gpu][optable]") {
  SKIP_WITHOUT_GPU();
  CHECK(test::run_op_rows_on(Device::cuda(0)) > 0);
}
