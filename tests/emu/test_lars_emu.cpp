// tests/emu/test_lars_emu.cpp - the fused LARS kernels (kernels/cuda/lars.cu)
// run by the kernel emulator against the CPU reference (optim::Lars on the
// CPU, i.e. kernels/cpu/lars.cpp) on a store with adapted, excluded, zero and
// multi-chunk parameters: two plain steps and a Nesterov step. The workspace
// and the trust output start as NaN bytes, so a chunk whose partial sums or
// trust are never written shows; the momentum and weights must agree to float
// rounding (both sides compute the update in double from the same floats; only
// the order of the norm sums differs).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/param.h"
#include "kernels/lars.h"
#include "optim/lars.h"

namespace emu = simclr::emu;
using namespace simclr;

namespace {

ParamStore make_store(uint64_t seed) {
  ParamStore s;
  s.add("conv1.weight", {64, 3, 3, 3}, kTrainable);
  s.add("bn1.weight", {64}, kTrainable | kIsBN);
  s.add("bn1.bias", {64}, kTrainable | kIsBN);
  s.add("bn1.running_mean", {64}, kIsBuffer | kIsBN);
  s.add("layer1.0.conv1.weight", {20000}, kTrainable);  // 5 chunks of 4096 (tail 3616)
  s.add("fc.weight", {10, 517}, kTrainable);
  s.add("fc.bias", {10}, kTrainable | kIsBias);
  s.add("zero.weight", {300}, kTrainable);             // |w| = 0: trust 1
  s.add("tiny.weight", {1}, kTrainable);
  s.add("still.weight", {4096}, kTrainable);           // g = 0 and wd = 0 below: |g'| = 0, trust 1
  s.materialize();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const char* n : {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "fc.weight", "fc.bias",
                        "tiny.weight", "still.weight"}) {
    Param& p = s.get(n);
    const float scale = std::strncmp(n, "layer1", 6) == 0 ? 0.05f : 0.5f;
    for (int64_t i = 0; i < p.value.numel(); i++) {
      p.value.data<float>()[i] = scale * nd(rng);
      p.grad.data<float>()[i] = 0.01f * nd(rng);
    }
  }
  Param& z = s.get("zero.weight");
  for (int64_t i = 0; i < z.value.numel(); i++) {
    z.value.data<float>()[i] = 0.0f;
    z.grad.data<float>()[i] = 0.02f * nd(rng);
  }
  s.get("still.weight").grad.zero_();
  return s;
}

void check_close(const std::vector<float>& got, const float* want, const char* what) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); i++) {
    INFO(what << "[" << i << "]: " << got[i] << " vs " << want[i]);
    REQUIRE(std::isfinite(got[i]));
    const double tol = std::ldexp(std::abs(static_cast<double>(want[i])), -22) + 1e-30;
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    worst = std::max(worst, err / tol);
    REQUIRE(err <= tol);
  }
}

// Runs `steps` LARS steps on the CPU and the same under emulation; compares.
void run(const LarsConfig& cfg, const std::vector<double>& lrs, uint64_t seed) {
  ParamStore ref = make_store(seed);
  Lars cpu_opt(cfg, ref);
  ParamStore st = make_store(seed);
  std::vector<LarsSegment> segs = Lars(cfg, st).segments();
  const std::vector<LarsChunk> chunks = lars_chunks(segs, 4096);
  REQUIRE(chunks.size() >= 12);

  const int64_t n = st.values().numel();
  std::vector<float> w(st.values().data<float>(), st.values().data<float>() + n);
  std::vector<float> g(st.grads().data<float>(), st.grads().data<float>() + n);
  std::vector<float> v(n, 0.0f);
  const LarsHyper h{cfg.momentum, cfg.eta, cfg.weight_decay, cfg.nesterov};
  for (size_t k = 0; k < lrs.size(); k++) {
    double lr = lrs[k];
    cpu_opt.step(lr);
    std::vector<unsigned char> ws(emu::lars_workspace_bytes(static_cast<int64_t>(chunks.size())), 0xFF);
    std::vector<float> trust(segs.size());
    std::memset(trust.data(), 0xFF, trust.size() * sizeof(float));
    emu::lars_step(w.data(), g.data(), v.data(), segs.data(), chunks.data(), static_cast<int64_t>(chunks.size()), &lr,
                   h, ws.data(), trust.data(), nullptr, nullptr);
    check_close(w, ref.values().data<float>(), "w");
    check_close(v, cpu_opt.state()[0].second.data<float>(), "v");
    const std::vector<double>& t_ref = cpu_opt.last_trust();
    REQUIRE(t_ref.size() == trust.size());
    for (size_t s = 0; s < trust.size(); s++) {
      INFO("trust of segment " << s);
      CHECK(trust[s] == Approx(t_ref[s]).epsilon(1e-6));
    }
    if (k == 0) {  // the cases of the rule were all exercised
      CHECK(t_ref[1] == 1.0);  // bn1.weight: excluded
      CHECK(t_ref[2] == 1.0);  // bn1.bias: excluded
      CHECK(t_ref[5] == 1.0);  // fc.bias: excluded
      CHECK(t_ref[6] == 1.0);  // zero.weight: |w| = 0
      CHECK(t_ref[0] != 1.0);
      CHECK(t_ref[3] != 1.0);
      CHECK(t_ref[8] == Approx(cfg.weight_decay == 0 ? 1.0 : cfg.eta / cfg.weight_decay));  // still.weight: g = 0
    }
  }
}

}  // namespace

TEST_CASE("lars emu: two steps match the CPU reference", "[emu][lars]") {
  LarsConfig cfg;  // momentum 0.9, eta 1e-3, wd 1e-6
  run(cfg, {0.7, 0.35}, 1);
}

TEST_CASE("lars emu: Nesterov, no weight decay, large eta", "[emu][lars]") {
  LarsConfig cfg;
  cfg.nesterov = true;
  cfg.weight_decay = 0.0;
  cfg.eta = 0.02;
  run(cfg, {1.3}, 2);
}

TEST_CASE("lars chunks: boundaries, first flags and segment ranges", "[emu][lars]") {
  std::vector<LarsSegment> segs(4);
  segs[0].offset = 0, segs[0].n = 10;
  segs[1].offset = 10, segs[1].n = 0;  // empty: one empty chunk
  segs[2].offset = 10, segs[2].n = 8;  // exactly two chunks of 4
  segs[3].offset = 18, segs[3].n = 1;
  const std::vector<LarsChunk> c = lars_chunks(segs, 4);
  REQUIRE(c.size() == 3 + 1 + 2 + 1);
  CHECK((segs[0].chunk_begin == 0 && segs[0].chunk_end == 3));
  CHECK((segs[1].chunk_begin == 3 && segs[1].chunk_end == 4));
  CHECK((segs[2].chunk_begin == 4 && segs[2].chunk_end == 6));
  CHECK((segs[3].chunk_begin == 6 && segs[3].chunk_end == 7));
  CHECK((c[2].begin == 8 && c[2].end == 10 && c[2].first == 0 && c[2].segment == 0));
  CHECK((c[3].begin == 10 && c[3].end == 10 && c[3].first == 1 && c[3].segment == 1));
  CHECK((c[4].first == 1 && c[5].first == 0 && c[5].end == 18));
  CHECK_THROWS_WITH(lars_chunks(segs, 0), Catch::Contains("chunk must be >= 1"));
}

// The device step's guard (kernels/lars.h lars_guard + the halt argument):
// a finite loss is recorded and leaves the updates on; a non-finite one sets
// the sticky flag, after which lars_step changes neither w nor v, even for a
// later finite loss; without the flag (halt = null) the same step updates.
TEST_CASE("lars emu: the loss guard stops every later update once a loss is not finite", "[emu][lars]") {
  ParamStore st = make_store(3);
  std::vector<LarsSegment> segs;
  int64_t off = 0;
  for (const Param& p : st.params()) {
    if (!p.trainable()) continue;
    LarsSegment s;
    s.offset = off;
    s.n = p.shape.numel();
    s.adapt = p.excluded_from_adaptation() ? 0 : 1;
    segs.push_back(s);
    off += s.n;
  }
  std::vector<LarsChunk> chunks = lars_chunks(segs, 64);
  const size_t n = static_cast<size_t>(st.values().numel());
  std::vector<float> w(st.values().data<float>(), st.values().data<float>() + n);
  std::vector<float> g(st.grads().data<float>(), st.grads().data<float>() + n);
  std::vector<float> v(n, 0.25f);
  const LarsHyper h;
  double lr = 0.5;
  std::vector<unsigned char> ws(emu::lars_workspace_bytes(static_cast<int64_t>(chunks.size())));
  float guard[2] = {-1.0f, 0.0f};
  auto step = [&](float loss, const float* halt) {
    emu::lars_guard(guard, &loss, nullptr);
    emu::lars_step(w.data(), g.data(), v.data(), segs.data(), chunks.data(), static_cast<int64_t>(chunks.size()), &lr,
                   h, ws.data(), nullptr, halt, nullptr);
  };
  std::vector<float> w0 = w, v0 = v;
  step(2.5f, guard + 1);
  CHECK(guard[0] == 2.5f);
  CHECK(guard[1] == 0.0f);
  CHECK(w != w0);  // a finite loss: updated
  CHECK(v != v0);
  std::vector<float> w1 = w, v1 = v;
  step(std::nanf(""), guard + 1);
  CHECK(std::isnan(guard[0]));
  CHECK(guard[1] == 1.0f);
  CHECK(w == w1);  // not finite: nothing changed
  CHECK(v == v1);
  step(1.0f, guard + 1);  // finite again: still halted (sticky)
  CHECK(guard[0] == 1.0f);
  CHECK(guard[1] == 1.0f);
  CHECK(w == w1);
  CHECK(v == v1);
  step(INFINITY, nullptr);  // no halt pointer: the kernel updates regardless
  CHECK(w != w1);
}
