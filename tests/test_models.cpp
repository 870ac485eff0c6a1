// tests/test_models.cpp - ResNet and projection head: torchvision parameter
// names (PyTorch-generated fixture), shapes for every depth and stem, width
// multiplier, initialisation statistics, gradients reach every parameter.
#include <cmath>
#include <fstream>

#include "helpers.h"
#include "engine/json_config.h"
#include "models/head.h"
#include "models/init.h"
#include "models/resnet.h"

using namespace simclr;

namespace {
json fixture_names() {
  return read_json_file(std::string(SIMCLR_SOURCE_DIR) + "/tests/fixtures/resnet_param_names.json");
}
Tensor rand_f32(const Shape& s, uint64_t seed) { return simclr::test::rand_tensor(s, seed, -1, 1, DType::f32); }
}  // namespace

TEST_CASE("resnet: parameter names and shapes equal torchvision's (fixture)", "[models]") {
  json fx = fixture_names();
  for (int depth : {18, 34, 50, 101, 152}) {
    ResNetConfig cfg;
    cfg.depth = depth;
    ParamStore store;
    ResNet net(cfg, store);
    const json& want = fx["resnet" + std::to_string(depth)];
    const auto& ps = store.params();
    REQUIRE(ps.size() == want.size());
    for (size_t i = 0; i < ps.size(); i++) {
      INFO("resnet" << depth << " #" << i);
      CHECK(ps[i].name == want[i][0].get<std::string>());
      std::vector<int64_t> torch_shape = want[i][1].get<std::vector<int64_t>>();
      std::vector<int64_t> ours = ps[i].shape.vec();
      if (ours.size() == 4) ours = {ours[0], ours[3], ours[1], ours[2]};  // OHWI -> OIHW
      if (torch_shape.empty()) torch_shape = {1};  // num_batches_tracked: scalar in torch
      CHECK(ours == torch_shape);
    }
    CHECK(net.feature_dim() == (depth >= 50 ? 2048 : 512));
  }
}

TEST_CASE("resnet: flags - BN params excluded from LARS, buffers not trainable", "[models]") {
  ParamStore store;
  ResNetConfig cfg;
  cfg.width = 0.25;
  ResNet net(cfg, store);
  for (const Param& p : store.params()) {
    INFO(p.name);
    const bool is_buffer = p.name.find("running_") != std::string::npos ||
                           p.name.find("num_batches_tracked") != std::string::npos;
    CHECK(p.trainable() == !is_buffer);
    const bool is_bn = p.name.find("bn") != std::string::npos || p.name.find("downsample.1") != std::string::npos;
    CHECK(p.excluded_from_adaptation() == is_bn);
    CHECK(!(p.flags & kIsHead));
  }
}

TEST_CASE("resnet: width multiplier and channel rounding", "[models]") {
  CHECK(scaled_channels(64, 0.25) == 16);
  CHECK(scaled_channels(64, 0.5) == 32);
  CHECK(scaled_channels(512, 2) == 1024);
  CHECK(scaled_channels(64, 0.001) == 1);      // at least one channel
  CHECK(scaled_channels(64, 0.3) == 19);       // round(19.2)
  ParamStore store;
  ResNetConfig cfg;
  cfg.depth = 50;
  cfg.width = 0.5;
  cfg.in_channels = 1;
  cfg.stem = "cifar";
  ResNet net(cfg, store);
  CHECK(net.feature_dim() == 1024);
  CHECK(store.get("conv1.weight").shape == Shape({32, 3, 3, 1}));
  CHECK(store.get("layer1.0.conv3.weight").shape == Shape({128, 1, 1, 32}));
  CHECK(store.get("layer4.2.conv2.weight").shape == Shape({256, 3, 3, 256}));
  CHECK_THROWS_WITH(ResNet(ResNetConfig{.depth = 20}, store), Catch::Contains("depth 20"));
  ResNetConfig bad;
  bad.stem = "tiny";
  ParamStore s2;
  CHECK_THROWS_WITH(ResNet(bad, s2), Catch::Contains("stem"));
}

TEST_CASE("resnet: forward shapes for every depth and stem", "[models]") {
  struct Case {
    int depth;
    const char* stem;
    int64_t hw;
  };
  for (Case c : {Case{18, "cifar", 12}, Case{34, "imagenet", 32}, Case{50, "cifar", 8}, Case{101, "imagenet", 32},
                 Case{152, "cifar", 4}}) {
    INFO("resnet" << c.depth << " " << c.stem);
    ParamStore store;
    ResNetConfig cfg;
    cfg.depth = c.depth;
    cfg.width = 0.0625;  // 4, 8, 16, 32 channels
    cfg.in_channels = 3;
    cfg.stem = c.stem;
    ResNet net(cfg, store);
    store.materialize();
    net.init(1);
    NoGrad ng;
    Tensor h = net.forward(rand_f32({2, c.hw, c.hw, 3}, 5), false);
    CHECK(h.shape() == Shape({2, net.feature_dim()}));
    CHECK(net.feature_dim() == (c.depth >= 50 ? 128 : 32));
    for (int64_t i = 0; i < h.numel(); i++) REQUIRE(std::isfinite(h.at(i)));
  }
}

TEST_CASE("resnet: torchvision initialisation statistics, zero_init_residual", "[models]") {
  ParamStore store;
  ResNetConfig cfg;
  cfg.zero_init_residual = true;
  ResNet net(cfg, store);
  store.materialize();
  net.init(42);
  // layer3.0.conv2: O = 256, 3x3 -> std = sqrt(2 / (256 * 9))
  Tensor w = store["layer3.0.conv2.weight"];
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < w.numel(); i++) s += w.at(i), s2 += w.at(i) * w.at(i);
  const double n = static_cast<double>(w.numel());
  CHECK(std::abs(s / n) < 3 * std::sqrt(2.0 / 2304) / std::sqrt(n));
  CHECK(std::sqrt(s2 / n) == Approx(std::sqrt(2.0 / 2304)).epsilon(0.01));
  CHECK(store["layer3.0.bn1.weight"].at(0) == 1.0);
  CHECK(store["layer3.0.bn2.weight"].at(0) == 0.0);  // last BN of the block
  CHECK(store["layer3.0.downsample.1.weight"].at(0) == 1.0);
  CHECK(store["bn1.running_var"].at(3) == 1.0);
  // same seed, same weights; another seed, others
  ParamStore store2;
  ResNet net2(cfg, store2);
  store2.materialize();
  net2.init(42);
  CHECK(store2["layer3.0.conv2.weight"].at(17) == w.at(17));
  net2.init(43);
  CHECK(store2["layer3.0.conv2.weight"].at(17) != w.at(17));
}

TEST_CASE("head: official layout (no bias before BN, last BN without beta), names, shapes", "[models]") {
  ParamStore store;
  HeadConfig hc;
  hc.depth = 3;
  ProjectionHead head(hc, 64, store);
  std::vector<std::string> names;
  for (const Param& p : store.params()) {
    names.push_back(p.name);
    CHECK((p.flags & kIsHead));
  }
  CHECK(names == std::vector<std::string>{
                     "head.0.weight", "head.1.weight", "head.1.bias", "head.1.running_mean", "head.1.running_var",
                     "head.1.num_batches_tracked", "head.3.weight", "head.4.weight", "head.4.bias",
                     "head.4.running_mean", "head.4.running_var", "head.4.num_batches_tracked", "head.6.weight",
                     "head.7.weight", "head.7.running_mean", "head.7.running_var", "head.7.num_batches_tracked"});
  CHECK(store.get("head.0.weight").shape == Shape({64, 64}));
  CHECK(store.get("head.6.weight").shape == Shape({128, 64}));
  store.materialize();
  head.init(3);
  Tensor z = head.forward(rand_f32({6, 64}, 2), true);
  CHECK(z.shape() == Shape({6, 128}));
  // the last BN has gamma 1 and no beta: each output column has batch mean 0
  for (int64_t c = 0; c < 128; c += 17) {
    double m = 0;
    for (int64_t r = 0; r < 6; r++) m += z.at(r * 128 + c);
    CHECK(std::abs(m / 6) < 1e-5);
  }
  clear_tape();
  CHECK(store["head.1.num_batches_tracked"].at(0) == 1.0);

  ParamStore s2;
  HeadConfig plain;
  plain.bn = false;
  plain.hidden = 32;
  plain.out = 16;
  ProjectionHead h2(plain, 8, s2);
  CHECK(s2.params().size() == 4);
  CHECK(s2.get("head.2.bias").flags & kIsBias);
  CHECK(s2.get("head.0.weight").shape == Shape({32, 8}));
}

TEST_CASE("resnet + head: one backward reaches every trainable parameter", "[models]") {
  ParamStore store;
  ResNetConfig cfg;
  cfg.width = 0.0625;
  cfg.in_channels = 1;
  cfg.stem = "cifar";
  ResNet net(cfg, store);
  ProjectionHead head(HeadConfig{}, net.feature_dim(), store);
  store.materialize();
  net.init(1);
  head.init(1);
  store.zero_grad();
  Tensor z = head.forward(net.forward(rand_f32({4, 8, 8, 1}, 9), true), true);
  Tensor r = rand_f32(z.shape(), 10);
  backward(sum_product(z, r));
  for (const Param& p : store.params()) {
    if (!p.trainable()) continue;
    INFO(p.name);
    double m = 0;
    for (int64_t i = 0; i < p.grad.numel(); i++) m = std::max(m, std::abs(p.grad.at(i)));
    CHECK(m > 0);
  }
  CHECK(store["layer1.0.bn1.num_batches_tracked"].at(0) == 1.0);
}

// STYLE point 13: a whole training step (ResNet-18 + official head + NT-Xent +
// backward + LARS, two steps) against the versioned PyTorch fixture made by
// tests/fixtures/make_train_step_fixture.py.
#include "train/npy.h"
#include "optim/lars.h"

TEST_CASE("train step: two SimCLR steps match PyTorch (fixture)", "[models][fixture]") {
  const std::string dir = std::string(SIMCLR_SOURCE_DIR) + "/tests/fixtures/";
  json meta = read_json_file(dir + "train_step.json");
  Tensor x = read_npy(dir + "train_step_x.npy");
  Tensor before = read_npy(dir + "train_step_before.npy");
  Tensor grad = read_npy(dir + "train_step_grad.npy");
  Tensor after = read_npy(dir + "train_step_after.npy");
  REQUIRE(x.shape() == Shape({8, 8, 8, 1}));

  ParamStore store;
  ResNetConfig rc;
  rc.depth = 18;
  rc.width = meta["width"].get<double>();
  rc.in_channels = 1;
  rc.stem = "cifar";
  ResNet net(rc, store);
  HeadConfig hc;
  hc.depth = 2;
  hc.hidden = meta["hidden"].get<int64_t>();
  hc.out = meta["out"].get<int64_t>();
  ProjectionHead head(hc, net.feature_dim(), store);
  store.materialize();
  REQUIRE(store.params().size() == meta["tensors"].size());
  for (const json& e : meta["tensors"]) {
    Param& p = store.get(e["name"].get<std::string>());  // throws on a name we do not have
    REQUIRE(p.shape.vec() == e["shape"].get<std::vector<int64_t>>());
    std::memcpy(p.value.data_ptr(), before.data<float>() + e["offset"].get<int64_t>(), p.value.nbytes());
  }
  auto fixture_view = [&](const Tensor& flat, const json& e, const Shape& s) {
    return Tensor::wrap(flat.data<float>() + e["offset"].get<int64_t>(), s, DType::f32);
  };
  LarsConfig lc;
  lc.momentum = meta["momentum"].get<double>();
  lc.eta = meta["eta"].get<double>();
  lc.weight_decay = meta["weight_decay"].get<double>();
  Lars opt(lc, store);
  const double tau = meta["tau"].get<double>(), lr = meta["lr"].get<double>();
  // Error budget. The reference is PyTorch in float64; any float32 run
  // differs from it by rounding, by an amount that depends on the order of its
  // reductions (so on the CPU, thread count and conv algorithm). Relative
  // deviations from the f64 reference, worst tensor, measured:
  //                 PyTorch 1.13 f32          this engine f32 (AVX2 CPU; reference
  //                 (4 orders on an AVX2 CPU  conv / oneDNN conv at 1 thread)
  //                 + the AVX-512 generator)
  //   loss, step 1  2.3e-7 .. 7.7e-7          1.8e-6 / 1.7e-6
  //   loss, step 2  4.5e-6 .. 2.6e-5          1.1e-4 / below 3e-4
  //   gradient      1.9e-5 .. 5.6e-5          1.9e-4 / 2.2e-4
  //   update        2.4e-4 .. 4.4e-4          1.0e-3 / 1.0e-3
  // (4 orders: 1 or 4 threads x oneDNN on or off; the AVX-512 figures are the
  // fixture's first meta, meta["torch_f32_error"] now holds the AVX2
  // regeneration, which left the .npy files bit for bit.) Our engine's rounding is another sample,
  // a few times PyTorch's: a batch of 8 views through BN at lr 0.5 moves BN
  // parameters by up to 27x their size in two steps, so the step-2 loss and the
  // update inherit the step-1 rounding amplified. The old limits (1e-6 on the
  // step-1 loss, 2e-4 on gradients) had been set on the AVX-512 machine and
  // failed on AVX2. Each tolerance is 2-3x our worst measurement, for
  // other CPUs and orders; a wrong formula lands far above (see the update).
  constexpr double kLossTol[2] = {5e-6,   // step 1: forward rounding only
                                  3e-4};  // step 2: after one amplifying step
  constexpr double kGradTol = 5e-4;       // step-1 gradients, normwise (floor 1e-3)
  constexpr double kUpdateTol = 3e-3;     // two-step update, relative to the update's largest element
  INFO("PyTorch f32 vs f64: " << meta["torch_f32_error"].dump());
  double worst_grad = 0, worst_update = 0;
  std::string worst_grad_name, worst_update_name;
  for (int step = 0; step < 2; step++) {
    store.zero_grad();
    Tensor loss = ntxent(head.forward(net.forward(x, true), true), tau);
    INFO("step " << step + 1);
    CHECK(loss.item() == Approx(meta["losses"][step].get<double>()).epsilon(kLossTol[step]));
    backward(loss);
    if (step == 0) {
      for (const json& e : meta["tensors"]) {
        const Param& p = store.get(e["name"].get<std::string>());
        if (!p.trainable()) continue;
        INFO("gradient of " << p.name);
        const double err = simclr::test::rel_err(p.grad, fixture_view(grad, e, p.shape), 1e-3);
        CHECK(err < kGradTol);
        if (err > worst_grad) worst_grad = err, worst_grad_name = p.name;
      }
    }
    opt.step(lr);
  }
  // The update of every tensor (parameters, running statistics, counters)
  // over the two steps, after - before, relative to the largest element of
  // the fixture's update: max|ours - after| / max|after - before|. LARS-adapted
  // weights move by only 0.8e-3 to 9e-3 of their size in two steps, so a check
  // of the values themselves (relative to the values) could not see a wrong
  // trust ratio; relative to the update it can: without the trust ratio the
  // error is 3e2 to 6e3, with no update of the adapted weights 1.0, with half the
  // trust ratio 0.5, with a trust ratio 1% off 0.9e-2 to 1.1e-2 (against
  // 3e-3; the old value check passed that one on every tensor).
  for (const json& e : meta["tensors"]) {
    const std::string name = e["name"].get<std::string>();
    INFO("update of " << name);
    Tensor got = store[name];
    const Tensor b = fixture_view(before, e, got.shape()), a = fixture_view(after, e, got.shape());
    double diff = 0, update = 0;
    for (int64_t i = 0; i < got.numel(); i++) {
      diff = std::max(diff, std::abs(got.at(i) - a.at(i)));
      update = std::max(update, std::abs(a.at(i) - b.at(i)));
    }
    REQUIRE(update > 0);  // every tensor of the fixture moves (counters by 2)
    const double err = diff / update;
    CHECK(err < kUpdateTol);
    if (err > worst_update) worst_update = err, worst_update_name = name;
  }
  std::printf("train step vs PyTorch f64: worst gradient error %.2e (%s), worst update error %.2e (%s)\n", worst_grad,
              worst_grad_name.c_str(), worst_update, worst_update_name.c_str());
}
