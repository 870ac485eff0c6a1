// tests/emu/test_augment_emu.cpp - the batched augmentation kernels
// (kernels/cuda/augment.cu) run by the kernel emulator against the CPU
// reference (kernels/cpu/augment.cpp, apply_view per view) on colour and grey
// sources of different sizes, every branch of the pipeline steered on
// (tests/augment_case.h), fp32 and bf16 output, with and without
// normalisation.
//
// Tolerances and why: the emulated kernels call the same inline per-pixel
// functions in the same order, compiled by the same compiler, so every
// pixel-local step is bit-identical; the one difference is the order of the
// double sum of the contrast mean (pixel order on the CPU, 256 strided
// partials and a tree in the kernel), which can move the float mean by an
// ulp in rare cases and the contrast output by about f * 2^-24. Bound used:
// 1e-6 on the [0, 1] values (the bound is 1/255 = 3.9e-3; a
// wrong step order, tap or crop offset moves values by far more, see the
// "the comparison has power" case). bf16: both sides round the same float
// (or floats 1e-6 apart) to nearest even: equal except where such a float
// pair straddles a rounding boundary, then one bf16 ulp (2^-8 relative).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "data/loader.h"
#include "kernels/augment.h"
#include "tests/augment_case.h"
#include "tests/guarded.h"
#include "train/feed.h"

namespace emu = simclr::emu;
using namespace simclr;
using namespace simclr::testing;

namespace {

constexpr double kTol01 = 1e-6;

// Output and workspace guarded and NaN-poisoned (tests/guarded.h): a pixel
// never written shows as NaN, a write outside the buffers breaks a guard.
template <class T>
std::vector<T> run_emu(const AugmentCase& k) {
  const size_t n = static_cast<size_t>(k.batch.views) * k.OH * k.OW * k.C;
  const simclr::test::Guarded<T> out(n);
  const simclr::test::Guarded<unsigned char> ws(emu::augment_workspace_bytes(k.batch));
  emu::augment_views(out.data(), k.src.data(), k.views.data(), k.batch, ws.data(), nullptr);
  REQUIRE(out.guards_intact());
  REQUIRE(ws.guards_intact());
  return out.get();
}

template <class T>
std::vector<T> run_cpu(const AugmentCase& k) {
  std::vector<T> out(static_cast<size_t>(k.batch.views) * k.OH * k.OW * k.C);
  cpu::augment_views(out.data(), k.src.data(), k.views.data(), k.batch);
  return out;
}

// One float view through apply_view directly (not the batch entry), for the
// check that the batch entry is apply_view.
std::vector<float> apply_one(const AugmentCase& k, int v, const ViewParams& p) {
  const AugmentView& av = k.views[v];
  std::vector<float> out(static_cast<size_t>(k.OH) * k.OW * k.C), tmp(out.size());
  apply_view(out.data(), tmp.data(), k.src.data() + av.src_offset, av.src_h, av.src_w, k.C, k.OH, k.OW, p, nullptr,
             nullptr);
  return out;
}

void check_coverage(const AugmentCase& k, bool blurs) {
  const Coverage c = coverage(k.views);
  INFO("flip " << c.flip << " noflip " << c.noflip << " gray " << c.gray << " blur " << c.blur << " blur1 " << c.blur1
               << " noblur " << c.noblur << " solar " << c.solar << " jitter " << c.jitter << " nojitter "
               << c.nojitter << " orders " << c.orders);
  CHECK(c.flip > 0);
  CHECK(c.noflip > 0);
  CHECK(c.gray > 0);
  CHECK((c.blur > 0) == blurs);
  CHECK(c.blur1 > 0);
  CHECK(c.noblur > 0);
  CHECK(c.solar > 0);
  CHECK(c.nojitter > 0);
  CHECK(c.orders == 24);
}

void report(const char* what, const Diff& d) {
  std::printf("augment emu %-34s max |diff| %.3g  mean %.3g  unequal %lld of %lld\n", what, d.max_abs, d.mean_abs,
              static_cast<long long>(d.unequal), static_cast<long long>(d.n));
}

}  // namespace

TEST_CASE("augment emu: colour views (fp32, unnormalised) match the CPU reference", "[emu][augment]") {
  const AugmentCase k = make_augment_case(3, 16, 16, 24, 7, false);  // 48 views
  check_coverage(k, false);
  REQUIRE(k.batch.max_blur_kernel == 1);  // 10% of 16: k = 1; the 24 x 24 case below blurs
  const std::vector<float> got = run_emu<float>(k), want = run_cpu<float>(k);
  const Diff d = diff(got.data(), want.data(), got.size());
  report("RGB 16x16 fp32", d);
  CHECK(d.max_abs <= kTol01);
  // the batch entry is apply_view, view by view
  for (int v : {0, 5, 17}) {
    const std::vector<float> one = apply_one(k, v, k.views[v].p);
    CHECK(std::memcmp(one.data(), want.data() + static_cast<size_t>(v) * one.size(), one.size() * 4) == 0);
  }
}

TEST_CASE("augment emu: colour views with blur, normalised, fp32 and bf16", "[emu][augment]") {
  // 24 x 24: blur kernel 2 * floor(2 / 2) + 1 = 3; 40 x 40 below: 5
  for (int S : {24, 40}) {
    const AugmentCase k = make_augment_case(3, S, S, 24, 11, true);  // 48 views
    check_coverage(k, true);
    REQUIRE(k.batch.max_blur_kernel == (S == 24 ? 3 : 5));
    const std::vector<float> got = run_emu<float>(k), want = run_cpu<float>(k);
    const Diff d = diff(got.data(), want.data(), got.size());
    report(S == 24 ? "RGB 24x24 blur norm fp32" : "RGB 40x40 blur norm fp32", d);
    // normalised values: the [0, 1] bound scaled by 1 / std (< 4.1)
    CHECK(d.max_abs <= kTol01 / 0.2435);
    const std::vector<bf16> gb = run_emu<bf16>(k), wb = run_cpu<bf16>(k);
    const Diff db = diff(gb.data(), wb.data(), gb.size());
    report(S == 24 ? "RGB 24x24 blur norm bf16" : "RGB 40x40 blur norm bf16", db);
    // one bf16 ulp of the largest normalised magnitude (|x| < 4.1: ulp 2^-6), rarely
    CHECK(db.max_abs <= std::ldexp(1.0, -6));
    CHECK(db.unequal <= db.n / 1000);
    // bf16 output is the float output rounded
    for (size_t i = 0; i < gb.size(); i += 97) CHECK(static_cast<float>(gb[i]) == static_cast<float>(bf16(got[i])));
  }
}

TEST_CASE("augment emu: grey sources (C = 1), blur, normalised", "[emu][augment]") {
  const AugmentCase k = make_augment_case(1, 24, 24, 12, 5, true);
  const std::vector<float> got = run_emu<float>(k), want = run_cpu<float>(k);
  const Diff d = diff(got.data(), want.data(), got.size());
  report("grey 24x24 blur norm fp32", d);
  CHECK(d.max_abs <= kTol01 / 0.2470);
}

TEST_CASE("augment emu: non-square output, views sharing a source", "[emu][augment]") {
  AugmentCase k = make_augment_case(3, 20, 28, 6, 3, false);
  // every view of source 0 (views 0, 1) repeated on the other views' slots 2, 3
  k.views[2] = k.views[0];
  k.views[3] = k.views[1];
  k.views[3].p.blur = 1, k.views[3].p.blur_kernel = 5, k.views[3].p.blur_sigma = 1.7f;
  k.batch.max_blur_kernel = augment_max_blur_kernel(k.views.data(), static_cast<int>(k.views.size()));
  REQUIRE(k.batch.max_blur_kernel >= 5);
  const std::vector<float> got = run_emu<float>(k), want = run_cpu<float>(k);
  const Diff d = diff(got.data(), want.data(), got.size());
  report("RGB 20x28 fp32", d);
  CHECK(d.max_abs <= kTol01);
  const size_t per = static_cast<size_t>(20) * 28 * 3;
  CHECK(std::memcmp(got.data(), got.data() + 2 * per, per * 4) == 0);  // same source, same params: same view
}

TEST_CASE("augment emu: the comparison has power (a wrong step, order or crop is seen)", "[emu][augment]") {
  // Each mutation of the parameters, applied to the reference only, must move
  // some view by more than the bound 1/255: the test above could not
  // pass with a kernel that made such a mistake.
  const AugmentCase k = make_augment_case(3, 24, 24, 8, 13, false);
  const std::vector<float> got = run_emu<float>(k);
  const size_t per = static_cast<size_t>(k.OH) * k.OW * k.C;
  auto worst_over_views = [&](auto mutate) {
    double worst = 0;
    for (int v = 0; v < k.batch.views; v++) {
      ViewParams p = k.views[v].p;
      if (!mutate(p)) continue;
      const std::vector<float> ref = apply_one(k, v, p);
      worst = std::max(worst, diff(got.data() + v * per, ref.data(), per).max_abs);
    }
    return worst;
  };
  const double swap_order = worst_over_views([](ViewParams& p) {
    if (!p.jitter) return false;
    std::swap(p.order[0], p.order[1]);
    return true;
  });
  const double crop_shift = worst_over_views([](ViewParams& p) {
    if (p.crop_x == 0) return false;
    p.crop_x -= 1;
    return true;
  });
  const double no_flip = worst_over_views([](ViewParams& p) {
    if (!p.flip) return false;
    p.flip = 0;
    return true;
  });
  const double sigma = worst_over_views([](ViewParams& p) {
    if (!(p.blur && p.blur_kernel > 1)) return false;
    p.blur_sigma *= 1.5f;
    return true;
  });
  const double hue = worst_over_views([](ViewParams& p) {
    if (!p.jitter) return false;
    p.hue += 0.05f;
    return true;
  });
  std::printf("augment emu mutants (max |diff|): order swap %.3g, crop x-1 %.3g, no flip %.3g, sigma x1.5 %.3g, "
              "hue +0.05 %.3g\n",
              swap_order, crop_shift, no_flip, sigma, hue);
  CHECK(swap_order > 1.0 / 255);
  CHECK(crop_shift > 1.0 / 255);
  CHECK(no_flip > 1.0 / 255);
  CHECK(sigma > 1.0 / 255);
  CHECK(hue > 1.0 / 255);
}

TEST_CASE("augment emu: the test card covers all six hue sectors and grey pixels", "[emu][augment]") {
  const std::vector<uint8_t> img = colour_card(24, 30, 3, 2);
  int sectors[7] = {0};
  for (size_t i = 0; i < img.size(); i += 3) {
    const int r = img[i], g = img[i + 1], b = img[i + 2];
    const int mx = std::max({r, g, b}), mn = std::min({r, g, b});
    if (mx == mn) {
      sectors[6]++;
      continue;
    }
    double h;  // in sixths
    if (mx == r) h = std::fmod(static_cast<double>(g - b) / (mx - mn) + 6.0, 6.0);
    else if (mx == g) h = 2.0 + static_cast<double>(b - r) / (mx - mn);
    else h = 4.0 + static_cast<double>(r - g) / (mx - mn);
    sectors[std::min(5, static_cast<int>(h))]++;
  }
  for (int s = 0; s < 7; s++) {
    INFO("sector " << s);
    CHECK(sectors[s] > 0);
  }
}

// ---------------------------------------------------------------- the pipeline (data.augment_on)
namespace {
// Colour test cards of varying sizes, in memory.
class CardDataset : public Dataset {
 public:
  explicit CardDataset(int64_t n) : n_(n) {}
  int64_t size() const override { return n_; }
  int channels() const override { return 3; }
  int height() const override { return 0; }
  int width() const override { return 0; }
  const std::vector<std::string>& class_names() const override { return names_; }
  Sample get(int64_t i) const override {
    const int H = 17 + static_cast<int>(i * 7 % 24), W = 19 + static_cast<int>(i * 5 % 21);
    Sample s;
    s.image = Image(H, W, 3);
    s.image.pixels = colour_card(H, W, 3, static_cast<uint32_t>(i));
    s.label = -1;
    return s;
  }
  std::string describe() const override { return "colour cards"; }

 private:
  int64_t n_;
  std::vector<std::string> names_;
};

DataConfig card_config() {
  DataConfig c;
  c.dataset = "flat-folder";
  c.channels = 3;
  c.image_size = 24;  // blur kernel 3
  c.mean = {0.5f, 0.45f, 0.4f};
  c.std = {0.25f, 0.24f, 0.26f};
  c.augment.solarize_p = 0.2;
  return c;
}
}  // namespace

TEST_CASE("augment emu: data.augment_on gpu and cpu give the same views for one seed", "[emu][augment][loader]") {
  auto ds = std::make_shared<CardDataset>(24);
  const DataConfig cfg = card_config();
  for (DType dt : {DType::f32, DType::bf16}) {
    LoaderOptions o = train_loader_options(cfg, 8, 99);
    o.workers = 2;
    o.max_epochs = 1;
    o.dtype = dt;
    Loader cpu_loader(ds, cfg, o);
    o.gpu_augment = true;
    Loader gpu_loader(ds, cfg, o);
    DeviceFeeder feeder(Device::emu());
    int batches = 0;
    while (!cpu_loader.done()) {
      const Batch a = cpu_loader.next(), b = gpu_loader.next();
      REQUIRE(a.indices == b.indices);
      REQUIRE(!b.views.defined());
      REQUIRE(b.augment.views == 16);
      REQUIRE(b.augment.max_blur_kernel == 3);
      const Tensor v = feeder.put_augmented(b.sources, b.view_params, b.augment, dt);
      feeder.issued();
      REQUIRE(v.device() == Device::emu());
      REQUIRE(v.shape() == a.views.shape());
      REQUIRE(v.dtype() == a.views.dtype());
      const std::vector<float> got = v.to_floats(), want = a.views.to_floats();
      const Diff d = diff(got.data(), want.data(), got.size());
      std::printf("augment emu pipeline %s batch %d: max |diff| %.3g, unequal %lld of %lld\n", dtype_name(dt),
                  batches, d.max_abs, static_cast<long long>(d.unequal), static_cast<long long>(d.n));
      // as above: 1e-6 on [0, 1] scaled by 1 / std; bf16: one ulp of |x| < 4 (2^-6), rarely
      CHECK(d.max_abs <= (dt == DType::f32 ? kTol01 / 0.24 : std::ldexp(1.0, -6)));
      CHECK(d.unequal <= (dt == DType::f32 ? d.n : d.n / 1000));
      batches++;
    }
    CHECK(batches == 3);
  }
}

TEST_CASE("augment: data.augment_on resolves per device", "[emu][augment]") {
  DataConfig c;
  CHECK(!augment_on_device(c, Device::cpu()));  // auto
  CHECK(!augment_on_device(c, Device::emu()));  // auto: a GPU only
  CHECK(augment_on_device(c, Device::cuda(0)));
  c.augment_on = "gpu";
  CHECK(augment_on_device(c, Device::emu()));
  CHECK_THROWS_WITH(augment_on_device(c, Device::cpu()), Catch::Contains("augment_on"));
  c.augment_on = "cpu";
  CHECK(!augment_on_device(c, Device::cuda(0)));
}
