// tests/emu/test_graph_emu.cpp - the device step without host waits, and its
// capture as a graph (engine/async.h, train/step.h CapturedStep), on the
// emulated device, where CI can run them:
//   - a captured and replayed step gives bit for bit the eager device steps'
//     weights, momentum and losses over steps with different views and
//     learning rates (the emulator runs the same kernels with the same
//     arguments in the same order, so exact equality is the right check; a
//     learning rate or input baked into the graph breaks it);
//   - replays allocate nothing, and eager steps after the first allocate the
//     same number of blocks every step with no growth (what lets the GPU's
//     caching pool stop allocating after warm-up);
//   - what breaks a CUDA graph on a GPU breaks the emulated capture, with a
//     message naming it: a host read, a synchronous runtime call, a free of a
//     block from before the capture, an allocation that outlives it;
//   - the device guard: a non-finite loss leaves weights and momentum as they
//     were, and so do all later steps (sticky), without the host reading the
//     loss inside the step.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/async.h"
#include "engine/device.h"
#include "kernels/emu/cuda_emu.h"
#include "tests/step_case.h"

using namespace simclr;
using namespace simclr::test::step_case;

namespace {

ResNetConfig tiny_resnet() {
  ResNetConfig c = small_resnet();
  c.width = 0.0625;  // channels 4/8/16/32
  return c;
}

HeadConfig tiny_head() {
  HeadConfig h;
  h.out = 16;
  return h;
}

ParamStore& on_emu(SimclrModel& m) {
  m.init(11);
  m.to(Device::emu());
  return m.store;
}

// The same initial weights every time, on the emulated device, with LARS.
struct Run {
  HeadConfig hc = tiny_head();
  SimclrModel model{tiny_resnet(), &hc};
  Lars lars{LarsConfig{}, on_emu(model)};
};

const std::vector<double> kLrs = {0.5, 0.2, 0.8, 0.35, 0.6};

}  // namespace

TEST_CASE("graph emu: a captured, replayed step equals the eager device steps exactly", "[emu][graph]") {
  Run eager, graphed;
  REQUIRE(eager.model.store.values().to_floats() == graphed.model.store.values().to_floats());
  CapturedStep cs(graphed.model, graphed.lars, 0.2, nullptr, /*eager_steps=*/1);
  for (size_t k = 0; k < kLrs.size(); k++) {
    INFO("step " << k << " (lr " << kLrs[k] << ")");
    const Tensor views = random_views(8, 8, 100 + k);  // host views, different every step
    const StepResult a = wait_result(train_step(views.to(Device::emu()), eager.model, eager.lars, kLrs[k], 0.2),
                                     eager.lars);
    const StepResult b = wait_result(cs.run(views, kLrs[k]), graphed.lars);
    CHECK(cs.captured() == (k >= 1));
    REQUIRE(a.updated);
    REQUIRE(b.updated);
    CHECK(a.loss == b.loss);
    CHECK(eager.model.store.values().to_floats() == graphed.model.store.values().to_floats());
    CHECK(eager.lars.state()[0].second.to_floats() == graphed.lars.state()[0].second.to_floats());
    CHECK(eager.model.store.grads().to_floats() == graphed.model.store.grads().to_floats());
  }
  CHECK(cs.nodes() > 100);  // a whole step: every kernel, memset and device copy of it
}

TEST_CASE("graph emu: replays allocate nothing, eager steps allocate the same every step", "[emu][graph]") {
  Run r;
  const Tensor views = random_views(8, 8, 3).to(Device::emu());
  std::vector<size_t> allocs, live;
  for (int s = 0; s < 4; s++) {
    const AllocStats before = cpu_alloc_stats();
    wait_result(train_step(views, r.model, r.lars, 0.5, 0.2), r.lars);
    const AllocStats after = cpu_alloc_stats();
    allocs.push_back(after.allocations - before.allocations);
    live.push_back(after.live_bytes);
  }
  INFO("allocations per step: " << allocs[0] << " " << allocs[1] << " " << allocs[2] << " " << allocs[3]);
  CHECK(allocs[1] > 50);
  CHECK(allocs[2] == allocs[1]);
  CHECK(allocs[3] == allocs[1]);
  CHECK(live[2] == live[1]);  // nothing kept from step to step
  CHECK(live[3] == live[1]);

  CapturedStep cs(r.model, r.lars, 0.2, nullptr, 1);
  cs.run(views, 0.5);  // eager
  cs.run(views, 0.5);  // captured (allocates the graph's blocks once) and replayed
  const AllocStats before = cpu_alloc_stats();
  for (int s = 0; s < 3; s++) cs.run(views, 0.4);
  const AllocStats after = cpu_alloc_stats();
  CHECK(after.allocations == before.allocations);
  CHECK(after.live_bytes == before.live_bytes);
}

TEST_CASE("graph emu: what a CUDA graph cannot replay breaks the capture with a message", "[emu][graph]") {
  const Device dev = Device::emu();
  Tensor kept = Tensor::full({4}, 2.0, DType::f32).to(dev);
  SECTION("a host read inside the capture") {
    const Tensor one = Tensor::full({1}, 3.0, DType::f32).to(dev);
    CaptureScope cap(dev);
    CHECK_THROWS_WITH(one.item(), Catch::Contains("inside a captured step"));
  }
  SECTION("a synchronous runtime call (cudaStreamSynchronize)") {
    CaptureScope cap(dev);
    CHECK(emu::cudaStreamSynchronize(nullptr) == cudaErrorStreamCaptureUnsupported);
    emu::cudaGetLastError();
    CHECK_THROWS_WITH(cap.end(), Catch::Contains("cudaStreamSynchronize"));
  }
  SECTION("freeing a block allocated before the capture") {
    Tensor doomed = Tensor::zeros({16}, DType::f32, dev);
    CaptureScope cap(dev);
    doomed = Tensor();
    CHECK_THROWS_WITH(cap.end(), Catch::Contains("allocated before the capture was freed inside it"));
  }
  SECTION("an allocation that outlives the capture") {
    Tensor leak;
    {
      CaptureScope cap(dev);
      leak = Tensor::zeros({16}, DType::f32, dev);
      CHECK_THROWS_WITH(cap.end(), Catch::Contains("still alive at its end"));
    }
  }
  SECTION("device work is recorded, not run, and replays in order") {
    Tensor t = Tensor::zeros({4}, DType::f32, dev);
    DeviceGraph g;
    {
      CaptureScope cap(dev);
      t.copy_from(kept);  // recorded: t stays 0 until the replay
      g = cap.end();
    }
    CHECK(t.to_floats() == std::vector<float>(4, 0.0f));
    g.replay();
    CHECK(t.to_floats() == std::vector<float>(4, 2.0f));
    CHECK(g.nodes() == 1);
  }
  CHECK_FALSE(DeviceGraph::capturing(dev));  // every section ended or abandoned its capture
}

TEST_CASE("graph emu: a non-finite loss stops this and every later update on the device", "[emu][graph]") {
  Run r;
  const Tensor views = random_views(8, 8, 9).to(Device::emu());
  const StepResult s1 = wait_result(train_step(views, r.model, r.lars, 0.5, 0.2), r.lars);
  REQUIRE(s1.updated);
  const std::vector<float> w1 = r.model.store.values().to_floats();
  const std::vector<float> v1 = r.lars.state()[0].second.to_floats();
  const StepResult s2 =
      wait_result(train_step(views, r.model, r.lars, 0.5, 0.2, nullptr, [](double) { return NAN; }), r.lars);
  CHECK_FALSE(s2.updated);
  CHECK(std::isnan(s2.loss));
  CHECK(r.model.store.values().to_floats() == w1);
  CHECK(r.lars.state()[0].second.to_floats() == v1);
  const StepResult s3 = train_step(views, r.model, r.lars, 0.5, 0.2);  // a finite loss, still halted
  CHECK(s3.pending);
  const StepResult s3w = wait_result(s3, r.lars);
  CHECK(std::isfinite(s3w.loss));
  CHECK_FALSE(s3w.updated);
  CHECK(r.model.store.values().to_floats() == w1);
  r.lars.clear_guard();
  CHECK(wait_result(train_step(views, r.model, r.lars, 0.5, 0.2), r.lars).updated);
  CHECK(r.model.store.values().to_floats() != w1);
}
