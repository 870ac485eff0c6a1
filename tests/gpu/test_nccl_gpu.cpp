// tests/gpu/test_nccl_gpu.cpp - the NCCL communicator (engine/comm_nccl_cuda.cpp)
// on one GPU at world size 1, bootstrapped over the local communicator: every
// collective on CUDA tensors (f32, f64, i64, bf16) is the identity it must be
// at size 1, a CPU tensor goes to the bootstrap, a tensor of another device is
// refused; then a SimCLR training step on cuda:0 with the NCCL communicator
// (tests/step_case.h's model) and the flat gradient's all-reduce through
// NCCL, which leaves it bit for bit; then the gradient buckets
// (train/grad_buckets.h) through NCCL's comm stream. Skipped without a GPU; listed in
// docs/validation.md as awaiting a device until it has run.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/comm.h"
#include "train/grad_buckets.h"
#include "engine/device.h"
#include "ops/ops.h"
#include "kernels/registry.h"
#include "tests/skip.h"
#include "tests/step_case.h"

using namespace simclr;

TEST_CASE("gpu: the NCCL communicator at world size 1: collectives and a training step", "[gpu][nccl]") {
  SKIP_WITHOUT_GPU();
  REQUIRE(nccl_built());
  std::unique_ptr<Communicator> c = make_nccl_communicator(std::make_unique<LocalCommunicator>(), 0);
  CHECK(c->backend() == "nccl");
  CHECK(c->rank() == 0);
  CHECK(c->size() == 1);
  const Device g = Device::cuda(0);
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::bf16}) {
    INFO(dtype_name(dt));
    Tensor h = Tensor::empty({1000}, DType::f64);
    for (int64_t i = 0; i < 1000; i++) h.data<double>()[i] = static_cast<double>(i % 17) - 8;
    Tensor t = h.to(dt).to(g);
    c->all_reduce_sum(t);
    Tensor out = Tensor::empty({1000}, dt, g);
    c->all_gather(out, t);
    c->broadcast(out, 0);
    c->barrier();
    const Tensor back = out.to(Device::cpu()).to(DType::f64);
    bool same = true;
    for (int64_t i = 0; i < 1000; i++) same = same && back.at(i) == h.at(i);
    CHECK(same);
  }
  Tensor cpu = Tensor::full({3}, 2.0);
  c->all_reduce_sum(cpu);  // the bootstrap's (local: identity)
  CHECK(cpu.at(1) == 2.0);
  Tensor wrong = Tensor::full({3}, 1.0, DType::f32, Device::emu());
  if (emulator_built()) CHECK_THROWS_WITH(c->all_reduce_sum(wrong), Catch::Contains("not on this rank's GPU"));

  // a training step on the GPU with the NCCL communicator, then its gradient all-reduce
  HeadConfig hc = test::step_case::small_head();
  SimclrModel model(test::step_case::small_resnet(), &hc);
  model.init(7);
  model.to(g);
  Lars lars(LarsConfig{}, model.store);
  const Tensor v = test::step_case::random_views(16, 16, 3).to(g);
  const StepResult r = wait_result(train_step(v, model, lars, 0.5, 0.2, c.get()), lars);
  CHECK(r.updated);
  CHECK(std::isfinite(r.loss));
  const std::vector<float> before = model.store.grads().to_floats();
  c->all_reduce_sum(model.store.grads());
  const std::vector<float> after = model.store.grads().to_floats();
  CHECK(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);
}

// NCCL at world size 1 posing as two replicas (sums double, gathers repeat),
// so that train_step takes the multi-process path: the gradient buckets are
// started on NCCL's comm stream during the backward pass and waited for by
// the engine stream. Against the same steps with one all-reduce after the
// backward pass: a bucket read by NCCL before its gradients were written (a
// missing event) would be doubled without them.
namespace {
class TwoReplicas final : public Communicator {
 public:
  explicit TwoReplicas(Communicator& nccl) : c_(nccl) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void all_reduce_sum(Tensor& t) override {
    c_.all_reduce_sum(t);
    t.copy_from(scale(t, 2.0));
  }
  void all_reduce_sum_start(Tensor& t) override {
    c_.all_reduce_sum_start(t);  // the identity at size 1, on the comm stream
    c_.all_reduce_wait();
    t.copy_from(scale(t, 2.0));
  }
  void all_reduce_wait() override { c_.all_reduce_wait(); }
  void all_gather(Tensor& out, const Tensor& in) override {
    const int64_t n = in.numel();
    for (int r = 0; r < 2; r++) out.view({out.numel()}).slice0(r * n, (r + 1) * n).copy_from(in.view({n}));
  }

 private:
  Communicator& c_;
};
}  // namespace

TEST_CASE("gpu: gradient buckets over NCCL's comm stream equal one all-reduce after backward", "[gpu][nccl]") {
  SKIP_WITHOUT_GPU();
  REQUIRE(nccl_built());
  std::unique_ptr<Communicator> c = make_nccl_communicator(std::make_unique<LocalCommunicator>(), 0);
  TwoReplicas two(*c);
  const Device g = Device::cuda(0);
  HeadConfig hc = test::step_case::small_head();
  SimclrModel a(test::step_case::small_resnet(), &hc), b(test::step_case::small_resnet(), &hc);
  a.init(3);
  b.init(3);
  a.to(g);
  b.to(g);
  a.grad_bucket_bytes = 0;
  b.grad_bucket_bytes = 16 << 10;
  Lars la(LarsConfig{}, a.store), lb(LarsConfig{}, b.store);
  const Tensor v = test::step_case::random_views(16, 16, 3).to(g);
  for (int step = 0; step < 3; step++) {
    INFO("step " << step);
    CHECK(wait_result(train_step(v, a, la, 0.5, 0.2, &two), la).updated);
    CHECK(wait_result(train_step(v, b, lb, 0.5, 0.2, &two), lb).updated);
    const std::vector<float> ga = a.store.grads().to_floats(), gb = b.store.grads().to_floats();
    double num = 0, den = 0;
    for (size_t i = 0; i < ga.size(); i++) {
      num += (ga[i] - gb[i]) * static_cast<double>(ga[i] - gb[i]);
      den += static_cast<double>(ga[i]) * ga[i];
    }
    // cuDNN may pick different (non-deterministic) algorithms: rounding-level differences
    // only; a bucket summed early misses whole contributions (O(1) relative)
    CHECK(std::sqrt(num / std::max(den, 1e-30)) < 1e-4);
    if (step > 0) CHECK(b.buckets->started_early() > 0);
  }
}
