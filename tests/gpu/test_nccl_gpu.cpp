// tests/gpu/test_nccl_gpu.cpp - the NCCL communicator (engine/comm_nccl_cuda.cpp)
// on one GPU at world size 1, bootstrapped over the local communicator: every
// collective on CUDA tensors (f32, f64, i64, bf16) is the identity it must be
// at size 1, a CPU tensor goes to the bootstrap, a tensor of another device is
// refused; then a SimCLR training step on cuda:0 with the NCCL communicator
// (tests/step_case.h's model) and the flat gradient's all-reduce through
// NCCL, which leaves it bit for bit. Skipped without a GPU; listed in
// docs/validation.md as awaiting a device until it has run.
#include <catch2/catch.hpp>

#include <cstring>

#include "engine/comm.h"
#include "engine/device.h"
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
  const StepResult r = train_step(v, model, lars, 0.5, 0.2, c.get());
  CHECK(r.updated);
  CHECK(std::isfinite(r.loss));
  const std::vector<float> before = model.store.grads().to_floats();
  c->all_reduce_sum(model.store.grads());
  const std::vector<float> after = model.store.grads().to_floats();
  CHECK(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);
}
