// tests/augment_case.h - the batch of the augmentation kernel tests
// (tests/emu/test_augment_emu.cpp, tests/gpu/test_augment_gpu.cpp): small
// colour (or grey) sources of different sizes packed into one u8 buffer, and
// views drawn by sample_view and then steered so that every branch runs:
// each of the 24 jitter orders, flip on/off, grayscale on/off, blur on/off
// (also blur set with a 1-tap kernel), solarisation on/off, jitter off, a
// full-image crop and a 1-pixel-wide one; plus the comparison statistics.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "data/augment.h"
#include "engine/dtype.h"

namespace simclr::testing {

// An HSV test card: hue sweeps along x (all six sectors), saturation and value
// along y, with noise, a grey band (max == min: the eqc branch) and pure
// primaries and white / black pixels. 3 channels; grey = its luma rounded.
inline std::vector<uint8_t> colour_card(int H, int W, int C, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(-12, 12);
  std::vector<uint8_t> img(static_cast<size_t>(H) * W * C);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      const double h = std::fmod(static_cast<double>(x) / W + 0.37 * seed / 7.0, 1.0);
      const double s = y % 5 == 2 ? 0.0 : 0.25 + 0.75 * y / std::max(1, H - 1);
      const double v = 0.2 + 0.8 * (1.0 - 0.5 * y / std::max(1, H - 1));
      const double hh = h * 6.0;
      const int i = static_cast<int>(hh) % 6;
      const double f = hh - std::floor(hh);
      const double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
      double rgb[3];
      switch (i) {
        case 0: rgb[0] = v, rgb[1] = t, rgb[2] = p; break;
        case 1: rgb[0] = q, rgb[1] = v, rgb[2] = p; break;
        case 2: rgb[0] = p, rgb[1] = v, rgb[2] = t; break;
        case 3: rgb[0] = p, rgb[1] = q, rgb[2] = v; break;
        case 4: rgb[0] = t, rgb[1] = p, rgb[2] = v; break;
        default: rgb[0] = v, rgb[1] = p, rgb[2] = q; break;
      }
      int u[3];
      const int n = s == 0.0 ? 0 : noise(rng);
      for (int c = 0; c < 3; c++) u[c] = std::clamp(static_cast<int>(std::lround(255 * rgb[c])) + n, 0, 255);
      if ((x * 7 + y * 3) % 29 == 0) u[0] = 255, u[1] = 0, u[2] = 0;        // pure red
      if ((x * 5 + y * 11) % 31 == 0) u[0] = u[1] = u[2] = (x + y) % 2 ? 255 : 0;  // white / black
      uint8_t* px = img.data() + (static_cast<size_t>(y) * W + x) * C;
      if (C == 3) {
        for (int c = 0; c < 3; c++) px[c] = static_cast<uint8_t>(u[c]);
      } else {
        px[0] = static_cast<uint8_t>(std::lround(0.299 * u[0] + 0.587 * u[1] + 0.114 * u[2]));
      }
    }
  return img;
}

struct AugmentCase {
  int C = 3, OH = 16, OW = 16;
  std::vector<uint8_t> src;        // packed sources
  std::vector<AugmentView> views;  // 2 views per source, then the steered extras
  AugmentBatch batch;
};

// n_sources sources of sizes from 17 x 23 to 40 x 31; 2 views each (sample_view
// with the SimCLR defaults, solarisation p 0.3), then steered: view i gets
// the jittering views take the 24 jitter orders in turn, and the branches above.
inline AugmentCase make_augment_case(int C, int OH, int OW, int n_sources, uint64_t seed, bool normalise) {
  AugmentCase k;
  k.C = C, k.OH = OH, k.OW = OW;
  AugmentConfig cfg;
  cfg.solarize_p = 0.3;
  cfg.gray_p = 0.3;
  const int sizes[][2] = {{17, 23}, {40, 31}, {24, 24}, {31, 40}, {23, 17}, {29, 35}, {16, 16}, {37, 19}};
  uint8_t perms[24][4];
  {
    uint8_t o[4] = {0, 1, 2, 3};
    int n = 0;
    do {
      std::copy(o, o + 4, perms[n++]);
    } while (std::next_permutation(o, o + 4));
  }
  for (int s = 0; s < n_sources; s++) {
    const int H = sizes[s % 8][0], W = sizes[s % 8][1];
    const int64_t off = static_cast<int64_t>(k.src.size());
    std::vector<uint8_t> img = colour_card(H, W, C, static_cast<uint32_t>(seed * 31 + s));
    k.src.insert(k.src.end(), img.begin(), img.end());
    for (int v = 0; v < 2; v++) {
      AugmentView av;
      av.p = sample_view(cfg, seed, 0, s, v, H, W, OH, OW);
      av.src_h = H, av.src_w = W, av.src_offset = off;
      k.views.push_back(av);
    }
  }
  // steering
  int jittering = 0;
  for (size_t i = 0; i < k.views.size(); i++) {
    ViewParams& p = k.views[i].p;
    if (i % 7 == 0) p.jitter = 0;
    if (i % 9 == 5) p.jitter = 1, p.hue = 0.5f - 0.07f * static_cast<float>(i % 3);  // large hue turns
    if (p.jitter) {  // the jittering views take the 24 orders in turn
      std::copy(perms[jittering % 24], perms[jittering % 24] + 4, p.order);
      jittering++;
    }
    if (i % 5 == 1) {  // the full image
      p.crop_x = p.crop_y = 0;
      p.crop_w = k.views[i].src_w, p.crop_h = k.views[i].src_h;
    }
    if (i % 11 == 3) {  // a one-pixel column: upsampled 1 -> OW
      p.crop_w = 1;
      p.crop_x = k.views[i].src_w - 1;
    }
    if (i % 13 == 4) p.blur_kernel = 1, p.blur = 1;  // drawn, but the identity
    if (i % 6 == 2) p.flip = 1 - p.flip;
  }
  k.batch.views = static_cast<int32_t>(k.views.size());
  k.batch.out_h = OH, k.batch.out_w = OW, k.batch.channels = C;
  k.batch.max_blur_kernel = augment_max_blur_kernel(k.views.data(), static_cast<int>(k.views.size()));
  if (normalise) {
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, stdv[3] = {0.2470f, 0.2435f, 0.2616f};
    k.batch.norm = make_norm(C, mean, stdv);
  }
  return k;
}

// The branches the case covers (asserted by the tests, so that steering that
// stops covering a branch fails).
struct Coverage {
  int flip = 0, noflip = 0, gray = 0, blur = 0, blur1 = 0, noblur = 0, solar = 0, jitter = 0, nojitter = 0;
  int orders = 0;  // distinct jitter orders among jittering views
};
inline Coverage coverage(const std::vector<AugmentView>& views) {
  Coverage c;
  std::vector<int> seen(256, 0);
  for (const AugmentView& v : views) {
    const ViewParams& p = v.p;
    (p.flip ? c.flip : c.noflip)++;
    c.gray += p.grayscale;
    if (p.blur && p.blur_kernel > 1) c.blur++;
    else if (p.blur) c.blur1++;
    else c.noblur++;
    c.solar += p.solarize;
    (p.jitter ? c.jitter : c.nojitter)++;
    if (p.jitter) seen[p.order[0] * 64 + p.order[1] * 16 + p.order[2] * 4 + p.order[3]] = 1;
  }
  for (int s : seen) c.orders += s;
  return c;
}

struct Diff {
  double max_abs = 0, mean_abs = 0;
  int64_t n = 0, unequal = 0;
};
template <class A, class B>
Diff diff(const A* a, const B* b, size_t n) {
  Diff d;
  d.n = static_cast<int64_t>(n);
  for (size_t i = 0; i < n; i++) {
    const double x = static_cast<double>(static_cast<float>(a[i])), y = static_cast<double>(static_cast<float>(b[i]));
    const double e = std::isfinite(x) && std::isfinite(y) ? std::abs(x - y) : 1e30;
    d.max_abs = std::max(d.max_abs, e);
    d.mean_abs += e;
    if (e != 0) d.unequal++;
  }
  if (n) d.mean_abs /= static_cast<double>(n);
  return d;
}

}  // namespace simclr::testing
