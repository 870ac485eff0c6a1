// tests/test_augment.cpp - the counter-based RNG, each augmentation step
// against torchvision (fixture from tests/fixtures/make_augment_fixtures.py)
// and against hand-computed pixels, and the statistics of the sampled
// parameters against their configured distributions.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "data/augment.h"
#include "data/image.h"
#include "data/rng.h"
#include "engine/json_config.h"
#include "helpers.h"

using namespace simclr;

namespace {

std::vector<float> to_float(const std::vector<uint8_t>& u8) {
  std::vector<float> f(u8.size());
  for (size_t i = 0; i < u8.size(); i++) f[i] = u8[i] / 255.f;
  return f;
}

double max_diff(const std::vector<float>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Kolmogorov-Smirnov statistic of samples against a CDF.
template <class Cdf>
double ks_stat(std::vector<double> x, Cdf cdf) {
  std::sort(x.begin(), x.end());
  double n = static_cast<double>(x.size()), d = 0;
  for (size_t i = 0; i < x.size(); i++) {
    double f = cdf(x[i]);
    d = std::max({d, (i + 1) / n - f, f - i / n});
  }
  return d;
}

// Independent reference blur: explicit reflect padding, then a direct 2-D
// convolution with the outer product of the 1-D kernel, in double.
std::vector<double> reference_blur(const std::vector<float>& img, int H, int W, int C, int k, double sigma) {
  std::vector<double> g(k);
  double sum = 0;
  for (int i = 0; i < k; i++) {
    double x = i - (k - 1) / 2.0;
    g[i] = std::exp(-0.5 * x * x / (sigma * sigma));
    sum += g[i];
  }
  for (double& v : g) v /= sum;
  int r = k / 2, PH = H + 2 * r, PW = W + 2 * r;
  auto refl = [](int i, int n) {  // numpy.pad(mode="reflect") for |i| < n
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
  };
  std::vector<double> pad(static_cast<size_t>(PH) * PW * C);
  for (int y = 0; y < PH; y++)
    for (int x = 0; x < PW; x++)
      for (int c = 0; c < C; c++)
        pad[(y * PW + x) * C + c] = img[(refl(y - r, H) * W + refl(x - r, W)) * C + c];
  std::vector<double> out(img.size());
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int i = 0; i < k; i++)
          for (int j = 0; j < k; j++) acc += g[i] * g[j] * pad[((y + i) * PW + x + j) * C + c];
        out[(y * W + x) * C + c] = acc;
      }
  return out;
}

AugmentConfig paper_config() { return AugmentConfig{}; }

}  // namespace

// ---------------------------------------------------------------- RNG
TEST_CASE("philox4x32-10 matches the Random123 known-answer vectors", "[augment][rng]") {
  struct Kat {
    uint32_t ctr[4], key[2], out[4];
  };
  // Random123 tests/kat_vectors, the three "philox4x32 10" lines.
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    Philox4x32 r = philox4x32_10(k.ctr, k.key);
    for (int i = 0; i < 4; i++) CHECK(r.v[i] == k.out[i]);
  }
}

TEST_CASE("counter RNG: the stream is a function of (seed, stream, sample, epoch) only", "[augment][rng]") {
  CounterRng a(42, kStreamView1, 7, 3), b(42, kStreamView1, 7, 3);
  for (int i = 0; i < 100; i++) REQUIRE(a.next_u32() == b.next_u32());
  CHECK(a.words_drawn() == 100);
  // word i of the stream is word i % 4 of block i / 4 of the counter (i/4, stream, sample, epoch)
  CounterRng c(0x0000000500000009ull, 2, 11, 13);
  uint32_t key[2] = {9, 5};
  for (uint32_t blk = 0; blk < 3; blk++) {
    uint32_t ctr[4] = {blk, 2, 11, 13};
    Philox4x32 r = philox4x32_10(ctr, key);
    for (int i = 0; i < 4; i++) CHECK(c.next_u32() == r.v[i]);
  }
  // any coordinate changes the stream
  auto first = [](uint64_t s, uint32_t st, uint32_t sa, uint32_t e) { return CounterRng(s, st, sa, e).next_u64(); };
  uint64_t base = first(1, 0, 5, 2);
  CHECK(first(2, 0, 5, 2) != base);
  CHECK(first(1, 1, 5, 2) != base);
  CHECK(first(1, 0, 6, 2) != base);
  CHECK(first(1, 0, 5, 3) != base);
  // uniform() in [0, 1) with mean 1/2; below(n) in range
  CounterRng u(5, 0, 0, 0);
  double s = 0;
  const int n = 100000;
  for (int i = 0; i < n; i++) {
    double x = u.uniform();
    REQUIRE(x >= 0.0);
    REQUIRE(x < 1.0);
    s += x;
  }
  CHECK(std::abs(s / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
  for (int i = 0; i < 1000; i++) REQUIRE(u.below(7) < 7);
}

// ---------------------------------------------------------------- against torchvision
TEST_CASE("augmentation steps match torchvision's tensor functions (fixture)", "[augment][fixture]") {
  std::string path = std::string(SIMCLR_SOURCE_DIR) + "/tests/fixtures/augment_torchvision.json";
  json fx = read_json_file(path);
  int checked = 0;
  for (const json& cs : fx["cases"]) {
    std::string name = cs["name"], op = cs["op"];
    INFO("case " << name);
    int H = cs["shape"][0], W = cs["shape"][1], C = cs["shape"][2];
    std::vector<uint8_t> in = cs["input_u8"].get<std::vector<uint8_t>>();
    std::vector<double> want = cs["output"].get<std::vector<double>>();
    const json& p = cs["params"];
    std::vector<float> img = to_float(in);
    // Tolerance: float arithmetic in a different order than torch's (sums of
    // 3-49 terms; the contrast mean accumulated in double here; the blur as two
    // 1-D passes instead of one 2-D convolution): a few ulps of 1 (largest seen
    // 3.6e-7).
    const double tol = 1e-6;
    if (op == "brightness") adjust_brightness(img.data(), H * W, C, p["f"].get<float>());
    else if (op == "contrast") adjust_contrast(img.data(), H * W, C, p["f"].get<float>());
    else if (op == "saturation") adjust_saturation(img.data(), H * W, C, p["f"].get<float>());
    else if (op == "hue") adjust_hue(img.data(), H * W, C, p["f"].get<float>());
    else if (op == "grayscale") to_grayscale(img.data(), H * W, C);
    else if (op == "solarize") solarize(img.data(), H * W, C, p["f"].get<float>());
    else if (op == "jitter") {
      ViewParams vp = identity_view(H, W);
      vp.jitter = 1;
      for (int i = 0; i < 4; i++) vp.order[i] = static_cast<uint8_t>(p["order"][i].get<int>());
      vp.brightness = p["b"], vp.contrast = p["c"], vp.saturation = p["s"], vp.hue = p["h"];
      std::vector<float> out(img.size()), tmp(img.size());
      apply_view(out.data(), tmp.data(), in.data(), H, W, C, H, W, vp, nullptr, nullptr);
      img = out;
    } else if (op == "blur") {
      // torchvision convolves with the 2-D outer-product kernel; we run two 1-D passes.
      std::vector<float> tmp(img.size());
      gaussian_blur(img.data(), tmp.data(), H, W, C, p["k"], p["sigma"].get<float>());
    } else if (op == "crop") {
      ViewParams vp;
      vp.crop_x = p["x"], vp.crop_y = p["y"], vp.crop_w = p["w"], vp.crop_h = p["h"];
      vp.flip = p["flip"].get<bool>();
      int OH = p["oh"], OW = p["ow"];
      img.assign(static_cast<size_t>(OH) * OW * C, -1.f);
      crop_resize_flip(img.data(), in.data(), H, W, C, OH, OW, vp);
    } else {
      FAIL("unknown fixture op " << op);
    }
    CHECK(max_diff(img, want) <= tol);
    checked++;
  }
  CHECK(checked == 26);
}

// ---------------------------------------------------------------- hand-computed pixels
TEST_CASE("identity parameters leave the image unchanged", "[augment]") {
  for (int C : {1, 3}) {
    const int H = 7, W = 9;
    std::vector<uint8_t> src(static_cast<size_t>(H) * W * C);
    for (size_t i = 0; i < src.size(); i++) src[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
    std::vector<float> out(src.size()), tmp(src.size());
    ViewParams id = identity_view(H, W);
    apply_view(out.data(), tmp.data(), src.data(), H, W, C, H, W, id, nullptr, nullptr);
    for (size_t i = 0; i < src.size(); i++) REQUIRE(out[i] == src[i] / 255.f);  // exact
    // jitter with neutral factors, blur with a 1-tap kernel, solarize above 1:
    // unchanged (hue 0 goes through RGB -> HSV -> RGB: a few ulps)
    ViewParams n = id;
    n.jitter = 1;
    n.blur = 1;
    n.blur_kernel = 1;
    n.solarize = 1;
    n.solarize_threshold = 1.5f;
    apply_view(out.data(), tmp.data(), src.data(), H, W, C, H, W, n, nullptr, nullptr);
    for (size_t i = 0; i < src.size(); i++) REQUIRE(std::abs(out[i] - src[i] / 255.f) <= 1e-6);
    // normalisation with mean 0, std 1 is the identity too
    float mean[3] = {0, 0, 0}, stdv[3] = {1, 1, 1};
    apply_view(out.data(), tmp.data(), src.data(), H, W, C, H, W, id, mean, stdv);
    for (size_t i = 0; i < src.size(); i++) REQUIRE(out[i] == src[i] / 255.f);
  }
}

TEST_CASE("crop, bilinear resize and flip on a linear gradient", "[augment]") {
  // pixel(y, x) = 4x + 3y: bilinear interpolation of a linear function is
  // exact, so out(oy, ox) = (4 (x0 + sx) + 3 (y0 + sy)) / 255 with the PyTorch
  // align_corners=False source coordinate s = clamp((o + 0.5) * in/out - 0.5, 0, in - 1).
  const int H = 20, W = 30;
  std::vector<uint8_t> src(H * W);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) src[y * W + x] = static_cast<uint8_t>(4 * x + 3 * y);
  struct Case {
    int x, y, w, h, OH, OW, flip;
  };
  for (Case c : {Case{5, 3, 12, 8, 6, 6, 0}, Case{5, 3, 12, 8, 6, 6, 1}, Case{2, 1, 4, 5, 9, 7, 1},
                 Case{0, 0, 30, 20, 20, 30, 0}, Case{29, 19, 1, 1, 3, 3, 0}}) {
    ViewParams p;
    p.crop_x = c.x, p.crop_y = c.y, p.crop_w = c.w, p.crop_h = c.h, p.flip = c.flip;
    std::vector<float> out(c.OH * c.OW);
    crop_resize_flip(out.data(), src.data(), H, W, 1, c.OH, c.OW, p);
    for (int oy = 0; oy < c.OH; oy++)
      for (int ox = 0; ox < c.OW; ox++) {
        int sxo = c.flip ? c.OW - 1 - ox : ox;
        double sx = std::clamp((sxo + 0.5) * c.w / c.OW - 0.5, 0.0, c.w - 1.0);
        double sy = std::clamp((oy + 0.5) * c.h / c.OH - 0.5, 0.0, c.h - 1.0);
        double want = (4 * (c.x + sx) + 3 * (c.y + sy)) / 255.0;
        REQUIRE(std::abs(out[oy * c.OW + ox] - want) < 2e-6);
      }
  }
  // flip mirrors the columns exactly
  ViewParams a, b;
  a.crop_x = b.crop_x = 3, a.crop_y = b.crop_y = 2, a.crop_w = b.crop_w = 17, a.crop_h = b.crop_h = 11;
  b.flip = 1;
  std::vector<float> oa(8 * 10), ob(8 * 10);
  crop_resize_flip(oa.data(), src.data(), H, W, 1, 8, 10, a);
  crop_resize_flip(ob.data(), src.data(), H, W, 1, 8, 10, b);
  for (int y = 0; y < 8; y++)
    for (int x = 0; x < 10; x++) REQUIRE(ob[y * 10 + x] == oa[y * 10 + 9 - x]);
}

TEST_CASE("colour steps against hand-computed pixels", "[augment]") {
  // two RGB pixels
  const float p1[3] = {0.2f, 0.4f, 0.6f}, p2[3] = {1.0f, 0.5f, 0.0f};
  auto img = [&] { return std::vector<float>{p1[0], p1[1], p1[2], p2[0], p2[1], p2[2]}; };
  std::vector<float> x = img();
  adjust_brightness(x.data(), 2, 3, 1.5f);
  std::vector<double> want = {0.3, 0.6, 0.9, 1.0, 0.75, 0.0};  // 1.5 clamps to 1
  CHECK(max_diff(x, want) < 1e-6);

  x = img();
  adjust_contrast(x.data(), 2, 3, 0.5f);
  double m = ((0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6) + (0.299 * 1.0 + 0.587 * 0.5)) / 2;  // 0.47775
  want = {0.1 + m / 2, 0.2 + m / 2, 0.3 + m / 2, 0.5 + m / 2, 0.25 + m / 2, m / 2};
  CHECK(max_diff(x, want) < 1e-6);

  x = img();
  adjust_saturation(x.data(), 2, 3, 0.0f);  // all grey: the luma of each pixel
  double l1 = 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6, l2 = 0.299 + 0.587 * 0.5;
  want = {l1, l1, l1, l2, l2, l2};
  CHECK(max_diff(x, want) < 1e-6);
  x = img();
  adjust_saturation(x.data(), 2, 3, 2.0f);  // 2x - luma, clamped
  want = {std::clamp(0.4 - l1, 0.0, 1.0), std::clamp(0.8 - l1, 0.0, 1.0), std::clamp(1.2 - l1, 0.0, 1.0),
          std::clamp(2.0 - l2, 0.0, 1.0), std::clamp(1.0 - l2, 0.0, 1.0), 0.0};
  CHECK(max_diff(x, want) < 1e-6);

  // hue: red + 1/3 turn = green; orange (h = 30 deg) + 1/2 turn = (0, 0.5, 1) (h = 210 deg)
  std::vector<float> red = {1, 0, 0};
  adjust_hue(red.data(), 1, 3, 1.f / 3.f);
  CHECK(max_diff(red, {0, 1, 0}) < 1e-6);
  std::vector<float> orange = {1, 0.5f, 0};
  adjust_hue(orange.data(), 1, 3, 0.5f);
  CHECK(max_diff(orange, {0, 0.5, 1}) < 1e-6);
  std::vector<float> grey = {0.3f, 0.3f, 0.3f};  // no saturation: hue changes nothing
  adjust_hue(grey.data(), 1, 3, 0.37f);
  CHECK(max_diff(grey, {0.3, 0.3, 0.3}) < 1e-7);
  // (0.2, 0.4, 0.6): h = 210 deg, s = 2/3, v = 0.6; -1/4 turn -> h = 120 deg -> (0.2, 0.6, 0.2)
  std::vector<float> blue = {0.2f, 0.4f, 0.6f};
  adjust_hue(blue.data(), 1, 3, -0.25f);
  CHECK(max_diff(blue, {0.2, 0.6, 0.2}) < 1e-6);

  // one channel: brightness and contrast act, saturation/hue/grayscale do not
  std::vector<float> g = {0.1f, 0.5f, 0.9f};
  adjust_contrast(g.data(), 3, 1, 2.0f);  // mean 0.5: 2x - 0.5
  CHECK(max_diff(g, {0.0, 0.5, 1.0}) < 1e-6);
  g = {0.1f, 0.5f, 0.9f};
  adjust_saturation(g.data(), 3, 1, 0.0f);
  adjust_hue(g.data(), 3, 1, 0.3f);
  to_grayscale(g.data(), 3, 1);
  CHECK(g == std::vector<float>{0.1f, 0.5f, 0.9f});
}

TEST_CASE("grayscale uses the ITU-R BT.601 weights", "[augment]") {
  std::vector<float> x = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0.5f, 0.25f, 1};
  to_grayscale(x.data(), 4, 3);
  double l4 = 0.299 * 0.5 + 0.587 * 0.25 + 0.114;
  CHECK(max_diff(x, {0.299, 0.299, 0.299, 0.587, 0.587, 0.587, 0.114, 0.114, 0.114, l4, l4, l4}) < 1e-7);
  // 8-bit conversion (readers): rounded luma
  CHECK(luma_u8(255, 0, 0) == 76);    // 76.245
  CHECK(luma_u8(0, 255, 0) == 150);   // 149.685
  CHECK(luma_u8(0, 0, 255) == 29);    // 29.07
  CHECK(luma_u8(255, 255, 255) == 255);
  CHECK(luma_u8(10, 20, 30) == 18);   // 2.99 + 11.74 + 3.42 = 18.15
  Image rgb(1, 2, 3);
  rgb.pixels = {255, 0, 0, 10, 20, 30};
  Image grey = convert_channels(rgb, 1);
  CHECK(grey.pixels == std::vector<uint8_t>{76, 18});
  Image back = convert_channels(grey, 3);
  CHECK(back.pixels == std::vector<uint8_t>{76, 76, 76, 18, 18, 18});
}

TEST_CASE("blur: an impulse gives the normalised Gaussian, reflect padding at the edges", "[augment]") {
  const int H = 11, W = 13, k = 5;
  const float sigma = 1.1f;
  std::vector<float> img(H * W, 0.f), tmp(H * W);
  img[5 * W + 6] = 1.f;
  gaussian_blur(img.data(), tmp.data(), H, W, 1, k, sigma);
  std::vector<double> g(k);
  double sum = 0;
  for (int i = 0; i < k; i++) sum += g[i] = std::exp(-0.5 * (i - 2) * (i - 2) / (1.1 * 1.1));
  double total = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int dy = y - 5, dx = x - 6;
      double want = (std::abs(dy) <= 2 && std::abs(dx) <= 2) ? g[dy + 2] * g[dx + 2] / (sum * sum) : 0.0;
      REQUIRE(std::abs(img[y * W + x] - want) < 1e-7);
      total += img[y * W + x];
    }
  CHECK(std::abs(total - 1.0) < 1e-6);
  // kernel side rule: k = 2 * floor(floor(0.1 S) / 2) + 1
  CHECK(blur_kernel_size(224, 0.1) == 23);
  CHECK(blur_kernel_size(32, 0.1) == 3);
  CHECK(blur_kernel_size(28, 0.1) == 3);
  CHECK(blur_kernel_size(96, 0.1) == 9);
  CHECK(blur_kernel_size(19, 0.1) == 1);
  // random RGB image, impulses at the border: against explicit reflect padding
  std::vector<float> r(6 * 8 * 3), t2(r.size());
  for (size_t i = 0; i < r.size(); i++) r[i] = static_cast<float>((i * 7919) % 101) / 100.f;
  r[0] = 1.f;
  std::vector<double> want = reference_blur(r, 6, 8, 3, 7, 1.7);
  gaussian_blur(r.data(), t2.data(), 6, 8, 3, 7, 1.7f);
  CHECK(max_diff(r, want) < 2e-6);
  // reflect_index is torch's "reflect" (edge not repeated), also when the
  // kernel is wider than the image
  CHECK(reflect_index(-1, 5) == 1);
  CHECK(reflect_index(-4, 5) == 4);
  CHECK(reflect_index(5, 5) == 3);
  CHECK(reflect_index(8, 5) == 0);
  CHECK(reflect_index(9, 5) == 1);
  CHECK(reflect_index(-3, 1) == 0);
}

// ---------------------------------------------------------------- sampling
TEST_CASE("random resized crop: fallback and rounding follow torchvision", "[augment]") {
  AugmentConfig c;
  int32_t box[4];
  // too wide to fit any try (w ~ 30 > H = 10 fails h): ratio 10 > 4/3 ->
  // h = H, w = round(H * 4/3) = 13, centred
  c.crop_scale_min = 0.9, c.crop_scale_max = 1.0;
  CounterRng r1(1, 0, 0, 0);
  sample_crop(box, r1, 10, 100, c);
  CHECK(box[0] == 43);
  CHECK(box[1] == 0);
  CHECK(box[2] == 13);
  CHECK(box[3] == 10);
  // too tall: ratio 0.1 < 3/4 -> w = W, h = round(W / (3/4)) = 13
  CounterRng r2(1, 0, 0, 0);
  sample_crop(box, r2, 100, 10, c);
  CHECK((box[0] == 0 && box[1] == 43 && box[2] == 10 && box[3] == 13));
  // scale > 1 never fits; a square image is within the ratio range -> whole image
  c.crop_scale_min = 1.5, c.crop_scale_max = 2.0;
  CounterRng r3(1, 0, 0, 0);
  sample_crop(box, r3, 17, 17, c);
  CHECK((box[0] == 0 && box[1] == 0 && box[2] == 17 && box[3] == 17));
  CHECK(r3.words_drawn() == 10 * 2 * 2);  // 10 tries of (scale, log-ratio), two words each
  // Python's round(): 2.5 -> 2, 3.5 -> 4
  c.crop_ratio_min = c.crop_ratio_max = 1.0;
  c.crop_scale_min = c.crop_scale_max = 0.0625;  // 100 * 0.0625 = 6.25, sqrt = 2.5
  CounterRng r4(1, 0, 0, 0);
  sample_crop(box, r4, 10, 10, c);
  CHECK((box[2] == 2 && box[3] == 2));
  c.crop_scale_min = c.crop_scale_max = 0.765625;  // 16 * 49/64 = 12.25, sqrt = 3.5
  CounterRng r5(1, 0, 0, 0);
  sample_crop(box, r5, 4, 4, c);
  CHECK((box[2] == 4 && box[3] == 4));
}

TEST_CASE("eval view: centred crop of the output aspect, identity at the output size", "[augment]") {
  ViewParams p = eval_view(28, 28, 28, 28);
  ViewParams id = identity_view(28, 28);
  CHECK(std::memcmp(&p, &id, sizeof(p)) == 0);
  p = eval_view(40, 60, 20, 20);
  CHECK((p.crop_x == 10 && p.crop_y == 0 && p.crop_w == 40 && p.crop_h == 40));
  p = eval_view(40, 60, 20, 20, 0.875);
  CHECK((p.crop_x == 12 && p.crop_y == 2 && p.crop_w == 35 && p.crop_h == 35));
  CHECK((p.flip == 0 && p.jitter == 0 && p.grayscale == 0 && p.blur == 0 && p.solarize == 0));
}

TEST_CASE("view parameters are a pure function of (seed, epoch, sample, view)", "[augment]") {
  AugmentConfig c = paper_config();
  auto draw = [&](uint64_t seed, int64_t epoch, int64_t sample, int view) {
    return sample_view(c, seed, epoch, sample, view, 40, 50, 32, 32);
  };
  const int n = 400;
  std::vector<ViewParams> serial(n), threaded(n);
  for (int i = 0; i < n; i++) serial[i] = draw(9, 2, i, i % 2);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&, t] {
      for (int i = n - 1 - t; i >= 0; i -= 4) threaded[i] = draw(9, 2, i, i % 2);
    });
  for (auto& t : ts) t.join();
  for (int i = 0; i < n; i++) REQUIRE(std::memcmp(&serial[i], &threaded[i], sizeof(ViewParams)) == 0);
  ViewParams a = draw(9, 2, 5, 0);
  CHECK(std::memcmp(&a, &serial[5], sizeof(a)) != 0);  // serial[5] is view 1 of sample 5
  ViewParams b = draw(9, 2, 5, 1);
  CHECK(std::memcmp(&b, &serial[5], sizeof(b)) == 0);
  auto differs = [&](const ViewParams& x) { return std::memcmp(&x, &a, sizeof(a)) != 0; };
  CHECK(differs(draw(10, 2, 5, 0)));
  CHECK(differs(draw(9, 3, 5, 0)));
  CHECK(differs(draw(9, 2, 6, 0)));
}

TEST_CASE("sampled parameters follow the configured distributions", "[augment][stats]") {
  // A 10000 x 10000 source makes pixel rounding of the crop box negligible
  // (relative 1e-4), so the box reveals the drawn scale and ratio.
  // Bounds: proportions within 5 binomial standard deviations; KS statistics
  // below 1.95 / sqrt(n) (alpha = 0.001); chi-square of the 24 jitter orders
  // below 55 (23 degrees of freedom, p ~ 2e-4). The draws are seeded, so the
  // test is deterministic; these bounds make it sound.
  AugmentConfig c = paper_config();
  c.solarize_p = 0.1;
  const int n = 20000;
  const double A = 1e8, smin = c.crop_scale_min, a = std::log(4.0 / 3.0);
  std::vector<double> scales, abs_log_ratios, xpos, bright, contr, satur, hues, sigmas;
  int flips = 0, jitters = 0, grays = 0, blurs = 0, solar = 0, positive_log = 0;
  std::map<std::string, int> orders;
  for (int i = 0; i < n; i++) {
    ViewParams p = sample_view(c, 123, 0, i, 0, 10000, 10000, 224, 224);
    scales.push_back(static_cast<double>(p.crop_w) * p.crop_h / A);
    double lr = std::log(static_cast<double>(p.crop_w) / p.crop_h);
    abs_log_ratios.push_back(std::abs(lr));
    positive_log += lr > 0;
    if (p.crop_w < 10000) xpos.push_back(static_cast<double>(p.crop_x) / (10000 - p.crop_w));
    flips += p.flip;
    grays += p.grayscale;
    solar += p.solarize;
    if (p.jitter) {
      jitters++;
      bright.push_back(p.brightness);
      contr.push_back(p.contrast);
      satur.push_back(p.saturation);
      hues.push_back(p.hue);
      orders[std::string(p.order, p.order + 4)]++;
    }
    if (p.blur) {
      blurs++;
      sigmas.push_back(p.blur_sigma);
      REQUIRE(p.blur_kernel == 23);
    }
  }
  auto prop_ok = [&](int count, int total, double p) {
    double ph = static_cast<double>(count) / total;
    return std::abs(ph - p) <= 5 * std::sqrt(p * (1 - p) / total);
  };
  CHECK(prop_ok(flips, n, 0.5));
  CHECK(prop_ok(jitters, n, 0.8));
  CHECK(prop_ok(grays, n, 0.2));
  CHECK(prop_ok(blurs, n, 0.5));
  CHECK(prop_ok(solar, n, 0.1));
  CHECK(prop_ok(positive_log, n, 0.5));

  // (s, t = |log r|) is uniform on the accepted region {s <= exp(-t)} of
  // [smin, 1] x [0, a] (rejection sampling; the fallback has probability ~1e-9).
  const double area = (1 - std::exp(-a)) - smin * a;
  auto scale_cdf = [&](double x) {
    x = std::clamp(x, smin, 1.0);
    if (x <= std::exp(-a)) return (x - smin) * a / area;
    double tx = -std::log(x);
    return (tx * (x - smin) + (x - std::exp(-a)) - smin * (a - tx)) / area;
  };
  auto ratio_cdf = [&](double t) {
    t = std::clamp(t, 0.0, a);
    return ((1 - std::exp(-t)) - smin * t) / area;
  };
  double ks_bound = 1.95 / std::sqrt(static_cast<double>(n));
  CHECK(ks_stat(scales, scale_cdf) < ks_bound);
  CHECK(ks_stat(abs_log_ratios, ratio_cdf) < ks_bound);
  // a wrong rule must fail the same test (e.g. uniform scale with no rejection)
  CHECK(ks_stat(scales, [&](double x) { return std::clamp((x - smin) / (1 - smin), 0.0, 1.0); }) > ks_bound);
  // crop position uniform over the free range
  double xm = 0;
  for (double v : xpos) xm += v;
  xm /= xpos.size();
  CHECK(std::abs(xm - 0.5) < 5 * std::sqrt(1.0 / 12 / xpos.size()));

  // jitter factors: uniform on [1 - 0.8, 1 + 0.8], hue on [-0.2, 0.2]
  double kb = 1.95 / std::sqrt(static_cast<double>(jitters));
  auto uni = [](double lo, double hi) { return [=](double x) { return std::clamp((x - lo) / (hi - lo), 0.0, 1.0); }; };
  CHECK(ks_stat(bright, uni(0.2, 1.8)) < kb);
  CHECK(ks_stat(contr, uni(0.2, 1.8)) < kb);
  CHECK(ks_stat(satur, uni(0.2, 1.8)) < kb);
  CHECK(ks_stat(hues, uni(-0.2, 0.2)) < kb);
  CHECK(ks_stat(sigmas, uni(0.1, 2.0)) < 1.95 / std::sqrt(static_cast<double>(blurs)));
  // the four steps in each of the 24 orders equally often
  CHECK(orders.size() == 24);
  double expect = jitters / 24.0, chi2 = 0;
  for (auto& kv : orders) chi2 += (kv.second - expect) * (kv.second - expect) / expect;
  CHECK(chi2 < 55);

  // strength 0.5 (CIFAR-style): brightness in [0.6, 1.4], hue in [-0.1, 0.1]; p = 0 / 1 are exact
  AugmentConfig s = paper_config();
  s.brightness = s.contrast = s.saturation = 0.4;
  s.hue = 0.1;
  s.jitter_p = 1.0;
  s.blur_p = 0.0;
  s.gray_p = 0.0;
  s.flip_p = 1.0;
  for (int i = 0; i < 2000; i++) {
    ViewParams p = sample_view(s, 5, 1, i, 1, 28, 28, 28, 28);
    REQUIRE((p.jitter == 1 && p.blur == 0 && p.grayscale == 0 && p.flip == 1));
    REQUIRE((p.brightness >= 0.6f && p.brightness <= 1.4f && std::abs(p.hue) <= 0.1f));
    REQUIRE((p.crop_x >= 0 && p.crop_y >= 0 && p.crop_x + p.crop_w <= 28 && p.crop_y + p.crop_h <= 28));
    REQUIRE((p.crop_w >= 1 && p.crop_h >= 1));
  }
}
