// tests/test_dispatch.cpp - the one dispatch point (kernels/registry.h): the
// backends' tables are the truth of supports(), an unsupported (op, device,
// dtype) fails naming all three (before anything is allocated), every op has
// its CPU rows, the rows hold the kernels of their own (op, dtype), and
// Tensor::data<T>() is host access only (ptr<T>() is the kernels' pointer).
//
// A CUDA tensor cannot be allocated without a GPU, so the device cases use a
// non-owning tensor labelled cuda:0 over host memory (Tensor::wrap), which is
// never dereferenced: the checks under test run on metadata only.
#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <vector>

#include "engine/op_table.h"
#include "engine/tensor.h"
#include "kernels/elementwise.h"
#include "kernels/registry.h"
#include "losses/losses.h"
#include "ops/ops.h"

using namespace simclr;

namespace {

constexpr std::array<DeviceKind, 2> kBackends = {DeviceKind::cpu, DeviceKind::cuda};

Device device_of(DeviceKind k) { return k == DeviceKind::cpu ? Device::cpu() : Device::cuda(0); }

int rows_of(DeviceKind backend, Op op, DType dt) {
  int n = 0;
  for (const KernelRow& r : kernel_table(backend)) n += r.op == op && r.dtype == dt;
  return n;
}

// The message check_supported and dispatch give.
std::string unsupported(const char* op, const char* device, const char* dtype) {
  return std::string("op ") + op + " is not supported on " + device + " for dtype " + dtype;
}

}  // namespace

TEST_CASE("dispatch: an unsupported (op, device, dtype) fails naming all three", "[dispatch]") {
  double host[32] = {};
  // relu on an f64 CUDA tensor: the CUDA backend has no f64 rows (with or without the CUDA build)
  Tensor xc = Tensor::wrap(host, {4, 8}, DType::f64, Device::cuda(0));
  CHECK_THROWS_WITH(relu(xc), unsupported("relu", "cuda:0", "f64"));
  CHECK_THROWS_WITH(add(xc, xc), unsupported("add", "cuda:0", "f64"));
  CHECK_THROWS_WITH(mean(xc), unsupported("mean", "cuda:0", "f64"));
  CHECK_THROWS_WITH(linear(xc, xc, Tensor()), unsupported("linear", "cuda:0", "f64"));
  // conv2d on the CPU in f16: the CPU rows are f32, f64 and (the model's ops) bf16
  Tensor x = Tensor::zeros({1, 3, 3, 2}, DType::f16), w = Tensor::zeros({2, 1, 1, 2}, DType::f16);
  CHECK_THROWS_WITH(conv2d(x, w, 1, 0), unsupported("conv2d", "cpu", "f16"));
  CHECK_THROWS_WITH(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), BatchNormOptions()),
                    unsupported("batch_norm", "cpu", "f16"));
  CHECK_THROWS_WITH(ntxent(Tensor::zeros({4, 3}, DType::bf16), 0.5), unsupported("ntxent", "cpu", "bf16"));
  CHECK_THROWS_WITH(relu(Tensor::zeros({3}, DType::i32)), unsupported("relu", "cpu", "i32"));
  CHECK_THROWS_WITH(cross_entropy(Tensor::zeros({2, 3}, DType::f16), Tensor::zeros({2}, DType::i64)),
                    unsupported("cross_entropy", "cpu", "f16"));
  // the check itself, on another device index
  CHECK_THROWS_WITH(check_supported(Op::l2_normalize, Device::cuda(3), DType::f64),
                    unsupported("l2_normalize", "cuda:3", "f64"));
  CHECK_NOTHROW(check_supported(Op::l2_normalize, Device::cpu(), DType::f64));
}

TEST_CASE("dispatch: supports() is the tables' rows, at most one row per (op, dtype) and backend", "[dispatch]") {
  for (DeviceKind b : kBackends) {
    for (const KernelRow& r : kernel_table(b)) {
      INFO(device_of(b).str() << " row " << op_name(r.op) << " " << dtype_name(r.dtype));
      CHECK(r.kernels != nullptr);
      CHECK(static_cast<int>(r.op) < kNumOps);
    }
    for (int o = 0; o < kNumOps; o++) {
      for (int d = 0; d < kNumDTypes; d++) {
        const Op op = static_cast<Op>(o);
        const DType dt = static_cast<DType>(d);
        INFO(device_of(b).str() << " " << op_name(op) << " " << dtype_name(dt));
        const int n = rows_of(b, op, dt);
        CHECK(n <= 1);
        CHECK(supports(b, op, dt) == (n == 1));
        if (n == 1) {
          CHECK_NOTHROW(check_supported(op, device_of(b), dt));
          CHECK(find_kernels(op, device_of(b), dt) != nullptr);
        } else {
          CHECK_THROWS_WITH(check_supported(op, device_of(b), dt),
                            unsupported(op_name(op), device_of(b).str().c_str(), dtype_name(dt)));
          CHECK_THROWS_WITH(find_kernels(op, device_of(b), dt),
                            unsupported(op_name(op), device_of(b).str().c_str(), dtype_name(dt)));
        }
      }
    }
  }
#ifdef SIMCLR_WITH_CUDA
  // the CUDA backend has the fused NT-Xent kernels (f32 input, bf16 input), the elementwise and pooling ops
  // (f32, bf16; kernels/cuda/elementwise.cu, pool.cu) and more to come
  CHECK(kernel_table(DeviceKind::cuda).size() >= 2);
  for (Op op : {Op::relu, Op::add, Op::add_relu, Op::sum_product, Op::mean, Op::scale, Op::max_pool2d,
                Op::global_avg_pool})
    CHECK((supports(DeviceKind::cuda, op, DType::f32) && supports(DeviceKind::cuda, op, DType::bf16)));
  CHECK(supports(DeviceKind::cuda, Op::ntxent, DType::f32));
  CHECK(supports(DeviceKind::cuda, Op::ntxent, DType::bf16));
#else
  CHECK(kernel_table(DeviceKind::cuda).empty());
#endif
}

TEST_CASE("dispatch: every op of the enum has an f32 and an f64 CPU row", "[dispatch]") {
  for (int o = 0; o < kNumOps; o++) {
    const Op op = static_cast<Op>(o);
    INFO(op_name(op));
    CHECK(supports(DeviceKind::cpu, op, DType::f32));
    CHECK(supports(DeviceKind::cpu, op, DType::f64));
  }
}

TEST_CASE("dispatch: a row holds the kernels of its own op and dtype", "[dispatch]") {
  // kernel_row takes op and dtype from the set's type; run two rows' kernels to see they are the right ones
  const std::vector<double> xd = {-1.5, 0.0, 2.25, -0.0, 3.0};
  std::vector<double> yd(5, 7.0);
  kernels_for<ReluKernels, double>(Device::cpu()).forward(yd.data(), xd.data(), 5);
  CHECK(yd == std::vector<double>({0.0, 0.0, 2.25, 0.0, 3.0}));
  const std::vector<float> xf = {1.f, 2.f, 3.f, 4.f};
  float m = -1.f;
  kernels_for<MeanKernels, float>(Device::cpu()).forward(&m, xf.data(), 4);
  CHECK(m == 2.5f);
  // the dispatch hands each dtype its own element type
  for (DType dt : {DType::f32, DType::f64}) {
    DType seen = DType::u8;
    dispatch<ScaleKernels>(Device::cpu(), dt, [&](const auto&, auto tag) { seen = dtype_of<decltype(tag)>::value; });
    CHECK(seen == dt);
  }
}

TEST_CASE("tensor: data<T>() is host access, ptr<T>() the kernels' pointer on any device", "[dispatch][tensor]") {
  float host[32] = {};
  Tensor t = Tensor::wrap(host, {4, 8}, DType::f32, Device::cuda(0));
  t.set_name("x");
  CHECK_THROWS_WITH(t.data<float>(), Catch::Contains("tensor 'x' f32[4, 8] on cuda:0 accessed on the host (cpu)"));
  CHECK(t.ptr<float>() == host);  // the device pointer, for a kernel of cuda:0
  CHECK_THROWS_WITH(t.ptr<double>(), Catch::Contains("accessed as f64"));
  CHECK(ptr_or_null<float>(Tensor()) == nullptr);
  Tensor c = Tensor::wrap(host, {4, 8}, DType::f32);
  CHECK(c.data<float>() == host);
  CHECK(c.ptr<float>() == host);
  CHECK_THROWS_WITH(c.data<int32_t>(), Catch::Contains("accessed as i32"));
}
