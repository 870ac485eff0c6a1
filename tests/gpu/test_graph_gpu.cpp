// tests/gpu/test_graph_gpu.cpp - the device step without host waits on a GPU
// (tests/emu/test_graph_emu.cpp runs the same checks on the emulated device):
//   - the step captured as a CUDA graph and replayed gives the eager steps'
//     weights and losses over steps with different views and learning rates
//     (deterministic cuDNN engines on both sides, so the same kernels run on
//     the same data: agreement to 1e-6 relative, a baked learning rate is off
//     by far more);
//   - after two warm-up steps the caching pool asks the driver for no more
//     memory, eager or replayed.
// Prints "SKIPPED: <reason>" without a device.
#include <catch2/catch.hpp>

#include "engine/async.h"
#include "engine/device.h"
#include "tests/skip.h"
#include "tests/step_case.h"

using namespace simclr;
using namespace simclr::test::step_case;

namespace {
ParamStore& on_gpu(SimclrModel& m) {
  m.init(11);
  m.to(Device::cuda(0));
  return m.store;
}
struct Run {
  HeadConfig hc = small_head();
  SimclrModel model{small_resnet(), &hc};
  Lars lars{LarsConfig{}, on_gpu(model)};
};
struct Deterministic {
  Deterministic() { set_cuda_deterministic(true); }
  ~Deterministic() { set_cuda_deterministic(false); }
};
}  // namespace

TEST_CASE("gpu: a captured, replayed step equals the eager steps", "[gpu][graph]") {
  SKIP_WITHOUT_GPU();
  Deterministic det;
  Run eager, graphed;
  CapturedStep cs(graphed.model, graphed.lars, 0.2, nullptr, 2);
  const std::vector<double> lrs = {0.5, 0.2, 0.8, 0.35, 0.6, 0.1};
  for (size_t k = 0; k < lrs.size(); k++) {
    INFO("step " << k << " (lr " << lrs[k] << ")");
    const Tensor views = random_views(16, 16, 100 + k);
    const StepResult a =
        wait_result(train_step(views.to(Device::cuda(0)), eager.model, eager.lars, lrs[k], 0.2), eager.lars);
    const StepResult b = wait_result(cs.run(views, lrs[k]), graphed.lars);
    CHECK(cs.captured() == (k >= 2));
    REQUIRE(a.updated);
    REQUIRE(b.updated);
    CHECK(b.loss == Approx(a.loss).epsilon(1e-6));
    const std::vector<float> wa = eager.model.store.values().to_floats(), wb = graphed.model.store.values().to_floats();
    const double d = rel(wb, wa, 0, static_cast<int64_t>(wa.size()));
    INFO("max |w_graph - w_eager| / max |w_eager| = " << d);
    CHECK(d <= 1e-6);
  }
  std::printf("captured step: %zu graph nodes\n", cs.nodes());
}

TEST_CASE("gpu: no new device memory after warm-up, eager or replayed", "[gpu][graph]") {
  SKIP_WITHOUT_GPU();
  Run r;
  const Tensor views = random_views(16, 16, 3).to(Device::cuda(0));
  for (int s = 0; s < 2; s++) wait_result(train_step(views, r.model, r.lars, 0.5, 0.2), r.lars);
  const size_t warm = device_pool_reserved_bytes(Device::cuda(0));
  for (int s = 0; s < 4; s++) wait_result(train_step(views, r.model, r.lars, 0.5, 0.2), r.lars);
  CHECK(device_pool_reserved_bytes(Device::cuda(0)) == warm);
  CapturedStep cs(r.model, r.lars, 0.2, nullptr, 1);
  for (int s = 0; s < 2; s++) cs.run(views, 0.4);  // eager, then captured
  const size_t graphed = device_pool_reserved_bytes(Device::cuda(0));
  for (int s = 0; s < 4; s++) cs.run(views, 0.4);
  wait_result(StepResult{0, false, true}, r.lars);
  CHECK(device_pool_reserved_bytes(Device::cuda(0)) == graphed);
  std::printf("pool reserved: %zu MiB after warm-up, %zu MiB with the graph\n", warm >> 20, graphed >> 20);
}
