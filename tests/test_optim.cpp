// tests/test_optim.cpp - LARS, SGD, AdamW and the learning-rate schedule
// against hand-computed values.
#include <cmath>

#include "helpers.h"
#include "engine/param.h"
#include "optim/adamw.h"
#include "optim/lars.h"
#include "optim/schedule.h"
#include "optim/sgd.h"

using namespace simclr;

namespace {
// A store with a conv-like weight, a BN gamma, a bias and a buffer (which the
// optimisers must leave alone).
ParamStore make_store() {
  ParamStore s;
  s.add("w", {2}, kTrainable);
  s.add("bn.weight", {2}, kTrainable | kIsBN);
  s.add("bn.running_mean", {2}, kIsBuffer | kIsBN);
  s.add("fc.bias", {1}, kTrainable | kIsBias);
  s.add("zero", {2}, kTrainable);  // |w| = 0: trust ratio 1
  s.materialize();
  auto set = [&](const char* n, std::vector<float> v, std::vector<float> g) {
    Param& p = s.get(n);
    for (size_t i = 0; i < v.size(); i++) {
      p.value.data<float>()[i] = v[i];
      p.grad.data<float>()[i] = g[i];
    }
  };
  set("w", {3, 4}, {0.6f, 0.8f});
  set("bn.weight", {1, -2}, {0.5f, 0.25f});
  set("fc.bias", {0.5f}, {-1});
  set("zero", {0, 0}, {1, 1});
  s.get("bn.running_mean").value.fill(7);
  return s;
}
float v(ParamStore& s, const char* n, int i) { return s.get(n).value.data<float>()[i]; }
}  // namespace

TEST_CASE("LARS: one and two steps against a hand computation", "[optim][lars]") {
  ParamStore s = make_store();
  LarsConfig cfg;  // momentum 0.9, eta 1e-3, wd 1e-6
  Lars opt(cfg, s);
  const double lr = 2.0, wd = 1e-6, eta = 1e-3;
  opt.step(lr);
  // w: g' = g + wd w = (0.6 + 3e-6, 0.8 + 4e-6) = 1.000005 * (0.6, 0.8), |g'| = 1.000005,
  // |w| = 5, trust = 1e-3 * 5 / 1.000005, v = lr trust g', w -= v.
  const double trust = eta * 5.0 / 1.000005;
  const double v0 = lr * trust * (0.6 + 3 * wd), v1 = lr * trust * (0.8 + 4 * wd);
  CHECK(v(s, "w", 0) == Approx(3 - v0).epsilon(1e-7));
  CHECK(v(s, "w", 1) == Approx(4 - v1).epsilon(1e-7));
  CHECK(opt.last_trust()[0] == Approx(trust).epsilon(1e-7));  // g is stored as f32 (0.6f)
  // excluded (BN gamma, bias): plain lr, no decay.
  CHECK(v(s, "bn.weight", 0) == Approx(1 - 2.0 * 0.5).margin(1e-7));
  CHECK(v(s, "bn.weight", 1) == Approx(-2 - 2.0 * 0.25).epsilon(1e-7));
  CHECK(v(s, "fc.bias", 0) == Approx(0.5 + 2.0).epsilon(1e-7));
  CHECK(opt.last_trust()[1] == 1.0);
  CHECK(opt.last_trust()[2] == 1.0);
  // |w| = 0: trust 1, g' = g (w = 0 adds no decay) -> w = -lr g
  CHECK(v(s, "zero", 0) == Approx(-2.0).epsilon(1e-7));
  CHECK(opt.last_trust()[3] == 1.0);
  // the buffer is untouched
  CHECK(v(s, "bn.running_mean", 0) == 7.0f);

  // Second step with the same gradients: v = 0.9 v + lr_2 g'_2.
  const double w0 = 3 - v0, w1 = 4 - v1;
  const double g0 = 0.6 + wd * w0, g1 = 0.8 + wd * w1;
  const double t2 = eta * std::sqrt(w0 * w0 + w1 * w1) / std::sqrt(g0 * g0 + g1 * g1);
  opt.step(1.0);
  CHECK(v(s, "w", 0) == Approx(w0 - (0.9 * v0 + 1.0 * t2 * g0)).epsilon(1e-7));
  CHECK(v(s, "w", 1) == Approx(w1 - (0.9 * v1 + 1.0 * t2 * g1)).epsilon(1e-7));
  // bias: v = 0.9 * (2 * -1) + 1 * -1 = -2.8
  CHECK(v(s, "fc.bias", 0) == Approx(2.5 + 2.8).epsilon(1e-7));
  // the momentum buffer is one flat buffer over all trainables
  CHECK(opt.state()[0].second.numel() == 7);
}

TEST_CASE("LARS: Nesterov variant", "[optim][lars]") {
  ParamStore s = make_store();
  LarsConfig cfg;
  cfg.nesterov = true;
  cfg.weight_decay = 0;
  Lars opt(cfg, s);
  opt.step(1.0);
  // w: trust = 1e-3 * 5 / 1; v = 0.005 g; update = 0.9 v + 0.005 g = 1.9 * 0.005 g
  CHECK(v(s, "w", 0) == Approx(3 - 1.9 * 0.005 * 0.6).epsilon(1e-7));
  CHECK(v(s, "fc.bias", 0) == Approx(0.5 + 1.9).epsilon(1e-7));
}

TEST_CASE("SGD: momentum, Nesterov, weight decay as torch.optim.SGD", "[optim]") {
  ParamStore s = make_store();
  SgdConfig cfg;
  cfg.momentum = 0.5;
  cfg.weight_decay = 0.1;
  Sgd opt(cfg, s);
  opt.step(0.1);
  // first step: b = g + wd w = 0.6 + 0.3 = 0.9; w = 3 - 0.1 * 0.9
  CHECK(v(s, "w", 0) == Approx(3 - 0.09).epsilon(1e-7));
  opt.step(0.1);
  // b = 0.5 * 0.9 + (0.6 + 0.1 * 2.91) = 1.341; w = 2.91 - 0.1341
  CHECK(v(s, "w", 0) == Approx(2.91 - 0.1341).epsilon(1e-6));

  ParamStore s2 = make_store();
  cfg.nesterov = true;
  cfg.weight_decay = 0;
  Sgd nes(cfg, s2);
  nes.step(0.1);
  // b = g = 0.6; d = g + 0.5 b = 0.9
  CHECK(v(s2, "w", 0) == Approx(3 - 0.09).epsilon(1e-7));
}

TEST_CASE("AdamW: first two steps as torch.optim.AdamW", "[optim]") {
  ParamStore s = make_store();
  AdamWConfig cfg;  // b1 0.9, b2 0.999, eps 1e-8, wd 0.01
  AdamW opt(cfg, s);
  opt.step(0.1);
  // t = 1: m/(1-b1) = g, v/(1-b2) = g^2 -> step = lr * g / (|g| + eps) = lr sign(g)
  CHECK(v(s, "w", 0) == Approx(3 * (1 - 0.1 * 0.01) - 0.1 * 0.6 / (0.6 + 1e-8)).epsilon(1e-7));
  opt.step(0.1);
  // t = 2 with the same gradient: bias-corrected m = g, v = g^2 again
  const double w1 = 3 * (1 - 0.001) - 0.1 * 0.6 / (0.6 + 1e-8);
  CHECK(v(s, "w", 0) == Approx(w1 * (1 - 0.001) - 0.1 * 0.6 / (0.6 + 1e-8)).epsilon(1e-6));
}

TEST_CASE("schedule: warm-up end, mid-way, end, lr scaling", "[optim][schedule]") {
  CHECK(scaled_base_lr(0.3, "linear", 4096) == Approx(4.8));
  CHECK(scaled_base_lr(0.075, "sqrt", 4096) == Approx(4.8));
  CHECK(scaled_base_lr(1.2, "none", 512) == 1.2);
  CHECK_THROWS_WITH(scaled_base_lr(1, "cubic", 256), Catch::Contains("cubic"));

  Schedule s(1.2, 10, 110);
  CHECK(s.lr(0) == 0.0);
  CHECK(s.lr(5) == Approx(0.6));
  CHECK(s.lr(10) == Approx(1.2));           // warm-up end = peak
  CHECK(s.lr(60) == Approx(0.6));           // half-way through the cosine
  CHECK(s.lr(35) == Approx(1.2 * 0.5 * (1 + std::cos(M_PI / 4))));
  CHECK(s.lr(110) == Approx(0.0).margin(1e-15));  // end
  CHECK(s.lr(109) > 0.0);
  Schedule nowarm(0.5, 0, 4);
  CHECK(nowarm.lr(0) == 0.5);
  CHECK(nowarm.lr(2) == Approx(0.25));
  CHECK(warmup_steps_from_epochs(0.5, 235, 1000) == 118);  // fractional epochs, rounded
  CHECK(warmup_steps_from_epochs(10, 235, 1000) == 1000);  // capped
  CHECK_THROWS_WITH(Schedule(1, 5, 4), Catch::Contains("warm-up"));
}
