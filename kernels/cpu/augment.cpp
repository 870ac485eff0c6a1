// kernels/cpu/augment.cpp - the CPU reference of each augmentation step and of
// a batch of views (contract: kernels/augment.h). Every step loops over the
// pixels calling the shared per-pixel functions of kernels/augment.h, the
// ones the CUDA kernels (kernels/cuda/augment.cu) call. data/augment.cpp
// draws the ViewParams; the loader's CPU path calls apply_view from here.
#include "kernels/augment.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/check.h"

namespace simclr {

void crop_resize_flip(float* dst, const uint8_t* src, int H, int W, int C, int OH, int OW, const ViewParams& p) {
  // dst: [OH, OW, C]; src: [H, W, C]
  SIMCLR_ASSERT(p.crop_x >= 0 && p.crop_y >= 0 && p.crop_w > 0 && p.crop_h > 0 && p.crop_x + p.crop_w <= W &&
                p.crop_y + p.crop_h <= H);
  const float scale_x = static_cast<float>(p.crop_w) / static_cast<float>(OW);
  const float scale_y = static_cast<float>(p.crop_h) / static_cast<float>(OH);
  // Column taps are the same for every row: compute once.
  std::vector<int> xs0(OW), xs1(OW);
  std::vector<float> wxs(OW);
  for (int ox = 0; ox < OW; ox++) {
    int x0, x1;
    bilinear_taps(ox, scale_x, p.crop_w, &x0, &x1, &wxs[ox]);
    xs0[ox] = p.crop_x + x0;
    xs1[ox] = p.crop_x + x1;
  }
  for (int oy = 0; oy < OH; oy++) {
    int y0, y1;
    float wy;
    bilinear_taps(oy, scale_y, p.crop_h, &y0, &y1, &wy);
    const uint8_t* row0 = src + static_cast<size_t>(p.crop_y + y0) * W * C;
    const uint8_t* row1 = src + static_cast<size_t>(p.crop_y + y1) * W * C;
    float* out = dst + static_cast<size_t>(oy) * OW * C;
    for (int ox = 0; ox < OW; ox++) {
      int sxo = p.flip ? OW - 1 - ox : ox;
      int a = xs0[sxo] * C, b = xs1[sxo] * C;
      float wx = wxs[sxo];
      for (int c = 0; c < C; c++)
        out[ox * C + c] = bilinear(u8_to01(row0[a + c]), u8_to01(row0[b + c]), u8_to01(row1[a + c]),
                                   u8_to01(row1[b + c]), wx, wy);
    }
  }
}

void adjust_brightness(float* img, int npix, int C, float f) {
  for (int i = 0; i < npix; i++) brightness_px(img + static_cast<size_t>(i) * C, C, f);
}

void adjust_contrast(float* img, int npix, int C, float f) {
  double sum = 0;
  for (int i = 0; i < npix; i++) sum += mean_term_px(img + static_cast<size_t>(i) * C, C);
  float m = static_cast<float>(sum / npix);  // C is 1 or 3: one value per pixel
  for (int i = 0; i < npix; i++) contrast_px(img + static_cast<size_t>(i) * C, C, f, m);
}

void adjust_saturation(float* img, int npix, int C, float f) {
  for (int i = 0; i < npix; i++) saturation_px(img + static_cast<size_t>(i) * C, C, f);
}

void adjust_hue(float* img, int npix, int C, float h) {
  for (int i = 0; i < npix; i++) hue_px(img + static_cast<size_t>(i) * C, C, h);
}

void to_grayscale(float* img, int npix, int C) {
  for (int i = 0; i < npix; i++) grayscale_px(img + static_cast<size_t>(i) * C, C);
}

void solarize(float* img, int npix, int C, float threshold) {
  for (int i = 0; i < npix; i++) solarize_px(img + static_cast<size_t>(i) * C, C, threshold);
}

void gaussian_blur(float* img, float* tmp, int OH, int OW, int C, int k, float sigma) {
  // img, tmp: [OH, OW, C]
  SIMCLR_ASSERT(k >= 1 && k % 2 == 1);
  if (k == 1) return;  // a 1-tap normalised kernel is the identity
  std::vector<float> w(static_cast<size_t>(k));
  gaussian_kernel1d(w.data(), k, sigma);
  const int r = k / 2, row = OW * C;
  // horizontal: tmp[y][x] = sum_j w[j] img[y][reflect(x + j - r)], through a
  // reflect-padded copy of the row
  std::vector<float> pad(static_cast<size_t>(OW + 2 * r) * C);
  std::vector<int> src_col(OW + 2 * r);
  for (int i = 0; i < OW + 2 * r; i++) src_col[i] = reflect_index(i - r, OW);
  for (int y = 0; y < OH; y++) {
    const float* in = img + static_cast<size_t>(y) * row;
    float* out = tmp + static_cast<size_t>(y) * row;
    for (int i = 0; i < OW + 2 * r; i++)
      for (int c = 0; c < C; c++) pad[i * C + c] = in[src_col[i] * C + c];
    for (int x = 0; x < row; x++) out[x] = 0.f;
    for (int j = 0; j < k; j++) {
      const float* src = pad.data() + j * C;
      for (int x = 0; x < row; x++) out[x] += w[j] * src[x];
    }
  }
  // vertical: img[y][x] = sum_i w[i] tmp[reflect(y + i - r)][x]
  for (int y = 0; y < OH; y++) {
    float* out = img + static_cast<size_t>(y) * row;
    for (int x = 0; x < row; x++) out[x] = 0.f;
    for (int i = 0; i < k; i++) {
      const float* src = tmp + static_cast<size_t>(reflect_index(y + i - r, OH)) * row;
      for (int x = 0; x < row; x++) out[x] += w[i] * src[x];
    }
  }
}

void normalize(float* img, int npix, int C, const float* mean, const float* std) {
  const AugmentNorm n = make_norm(C, mean, std);
  for (int i = 0; i < npix; i++) normalize_px(img + static_cast<size_t>(i) * C, C, n);
}

void apply_view(float* dst, float* tmp, const uint8_t* src, int H, int W, int C, int OH, int OW,
                const ViewParams& p, const float* mean, const float* std) {
  SIMCLR_ASSERT(C == 1 || C == 3);
  int npix = OH * OW;
  crop_resize_flip(dst, src, H, W, C, OH, OW, p);
  if (p.jitter) {
    for (int i = 0; i < 4; i++) {
      switch (p.order[i]) {
        case kBrightness: adjust_brightness(dst, npix, C, p.brightness); break;
        case kContrast: adjust_contrast(dst, npix, C, p.contrast); break;
        case kSaturation: adjust_saturation(dst, npix, C, p.saturation); break;
        case kHue: adjust_hue(dst, npix, C, p.hue); break;
        default: SIMCLR_ASSERT(false);
      }
    }
  }
  if (p.grayscale) to_grayscale(dst, npix, C);
  if (p.blur) gaussian_blur(dst, tmp, OH, OW, C, p.blur_kernel, p.blur_sigma);
  if (p.solarize) solarize(dst, npix, C, p.solarize_threshold);
  if (mean && std) normalize(dst, npix, C, mean, std);
}

int32_t augment_max_blur_kernel(const AugmentView* views, int n) {
  int32_t k = 1;
  for (int i = 0; i < n; i++)
    if (views[i].p.blur) k = std::max(k, views[i].p.blur_kernel);
  return k;
}

namespace cpu {
namespace {
template <class T>
void augment_views_t(T* dst, const uint8_t* src, const AugmentView* views, const AugmentBatch& b) {
  SIMCLR_CHECK(b.views >= 0 && b.out_h > 0 && b.out_w > 0 && (b.channels == 1 || b.channels == 3),
               "augment_views: bad batch (views ", b.views, ", output ", b.out_h, "x", b.out_w, "x", b.channels, ")");
  const int C = b.channels;
  const size_t per_view = static_cast<size_t>(b.out_h) * b.out_w * C;
#pragma omp parallel
  {
    std::vector<float> img(per_view), tmp(per_view);
#pragma omp for schedule(dynamic, 1)
    for (int v = 0; v < b.views; v++) {
      const AugmentView& av = views[v];
      // unnormalised, then b.norm (the same (x - mean) * inv_std as apply_view's normalize)
      apply_view(img.data(), tmp.data(), src + av.src_offset, av.src_h, av.src_w, C, b.out_h, b.out_w, av.p,
                 nullptr, nullptr);
      for (size_t i = 0; i < per_view; i += static_cast<size_t>(C)) normalize_px(img.data() + i, C, b.norm);
      T* out = dst + static_cast<size_t>(v) * per_view;
      for (size_t i = 0; i < per_view; i++) {
        if constexpr (std::is_same_v<T, float>)
          out[i] = img[i];
        else
          out[i] = T(img[i]);
      }
    }
  }
}
}  // namespace

void augment_views(float* dst, const uint8_t* src, const AugmentView* views, const AugmentBatch& b) {
  augment_views_t(dst, src, views, b);
}
void augment_views(bf16* dst, const uint8_t* src, const AugmentView* views, const AugmentBatch& b) {
  augment_views_t(dst, src, views, b);
}
}  // namespace cpu

}  // namespace simclr
