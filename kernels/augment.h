// kernels/augment.h - SimCLR's per-view augmentation as a kernel family: the
// plain parameter struct of one view, the per-pixel maths (inline,
// host/device), the CPU reference of each step (kernels/cpu/augment.cpp) and
// the batched CUDA kernels (kernels/cuda/augment.cu, also run under the
// kernel emulator). data/augment.h (the sampling half: config, RNG draws)
// includes this header and re-exports it unchanged to its users.
//
// One view = crop box -> bilinear resize -> horizontal flip -> colour jitter
// (steps in ViewParams::order, if drawn) -> grayscale (if drawn) -> Gaussian
// blur (if drawn) -> solarisation (if drawn) -> (x - mean) / std. Pixels are
// float in [0, 1] from u8 / 255.f; every step stays in float. The CPU
// reference and the kernels call the same inline functions below in the same
// order, so they differ only where the compilers do (nvcc contracts a * b + c
// into one FMA, and its expf is not glibc's): within a few float ulps. The
// one non-pixel-local colour step, contrast, blends with the mean of the luma
// of the whole view as it is when contrast runs (after the crop and the
// jitter steps drawn before it), summed in double.
//
// Layouts: source u8 [H, W, C]; output [OH, OW, C] per view (the rows of an
// NHWC batch). C is 1 or 3: on 1-channel images saturation, hue and
// grayscale are the identity (torchvision: "match PIL behaviour").
#pragma once
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "engine/dtype.h"

#if defined(__CUDACC__)
#define SIMCLR_AUG_HD __host__ __device__
#else
#define SIMCLR_AUG_HD
#endif

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace simclr {

// ---------------------------------------------------------------- parameters
// Indices into ViewParams::order (the ColorJitter steps).
enum JitterOp : uint8_t { kBrightness = 0, kContrast = 1, kSaturation = 2, kHue = 3 };

// Everything one view needs. Plain data (trivially copyable, fixed layout) so a
// batch of them can be copied to the GPU as is.
struct ViewParams {
  // geometry: crop box in source pixels, then flip of the resized crop
  int32_t crop_x = 0, crop_y = 0, crop_w = 0, crop_h = 0;
  int32_t flip = 0;
  // colour jitter: applied only when jitter != 0, steps in `order`
  int32_t jitter = 0;
  float brightness = 1.f, contrast = 1.f, saturation = 1.f, hue = 0.f;
  uint8_t order[4] = {kBrightness, kContrast, kSaturation, kHue};
  int32_t grayscale = 0;
  // blur: kernel side blur_kernel (odd), sigma blur_sigma
  int32_t blur = 0;
  int32_t blur_kernel = 1;
  float blur_sigma = 1.f;
  int32_t solarize = 0;
  float solarize_threshold = 0.5f;
};
static_assert(std::is_trivially_copyable_v<ViewParams>, "ViewParams must stay plain data");

// ---------------------------------------------------------------- per-pixel maths
// float pixels in [0, 1]; the shared definitions of the CPU reference and the kernels.

SIMCLR_AUG_HD inline float clamp01(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
// ITU-R BT.601 luma.
SIMCLR_AUG_HD inline float luma(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }
// torchvision _blend: clamp(f a + (1 - f) b, 0, 1).
SIMCLR_AUG_HD inline float blend(float a, float b, float f) { return clamp01(f * a + (1.f - f) * b); }

// u8 -> [0, 1] by a float division, as torchvision's ToTensor (x.float() / 255).
SIMCLR_AUG_HD inline float u8_to01(uint8_t v) { return static_cast<float>(v) / 255.f; }

// PyTorch's interpolate(bilinear, align_corners=False, antialias=False) taps
// along one axis of a crop of length n resized to output coordinate o with
// scale = n / out_len (float): s = max((o + 0.5) scale - 0.5, 0),
// i0 = floor(s), i1 = min(i0 + 1, n - 1), w = s - i0.
SIMCLR_AUG_HD inline void bilinear_taps(int o, float scale, int n, int* i0, int* i1, float* w) {
  float s = (static_cast<float>(o) + 0.5f) * scale - 0.5f;
  if (s < 0.f) s = 0.f;
  int a = static_cast<int>(s);
  *i0 = a;
  *i1 = a + (a < n - 1 ? 1 : 0);
  *w = s - static_cast<float>(a);
}
// The bilinear blend of the four taps (rows y0, y1; columns x0, x1).
SIMCLR_AUG_HD inline float bilinear(float p00, float p01, float p10, float p11, float wx, float wy) {
  return (1.f - wy) * ((1.f - wx) * p00 + wx * p01) + wy * ((1.f - wx) * p10 + wx * p11);
}

// Hue rotation of one RGB pixel by h (in turns, [-0.5, 0.5]): torchvision's
// _rgb2hsv / _hsv2rgb in float, same formulas and branch order.
SIMCLR_AUG_HD inline void hue_pixel(float* rgb, float h) {
  float r = rgb[0], g = rgb[1], b = rgb[2];
  float maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
  float minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
  bool eqc = maxc == minc;
  float cr = maxc - minc;
  float s = cr / (eqc ? 1.f : maxc);
  float div = eqc ? 1.f : cr;
  float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
  float hh;
  if (maxc == r) hh = bc - gc;
  else if (maxc == g) hh = 2.f + rc - bc;
  else hh = 4.f + gc - rc;
  hh = hh / 6.f + 1.f;
  hh = hh - static_cast<float>(static_cast<int>(hh));  // fmod(hh, 1), hh >= 0
  // (h + hue) % 1.0, Python's modulo (result in [0, 1))
  float t = hh + h;
  t = t - floorf(t);
  float v = maxc;
  float i = floorf(t * 6.f);
  float f = t * 6.f - i;
  int ii = static_cast<int>(i) % 6;
  float p = clamp01(v * (1.f - s));
  float q = clamp01(v * (1.f - s * f));
  float tt = clamp01(v * (1.f - s * (1.f - f)));
  switch (ii) {
    case 0: rgb[0] = v; rgb[1] = tt; rgb[2] = p; break;
    case 1: rgb[0] = q; rgb[1] = v; rgb[2] = p; break;
    case 2: rgb[0] = p; rgb[1] = v; rgb[2] = tt; break;
    case 3: rgb[0] = p; rgb[1] = q; rgb[2] = v; break;
    case 4: rgb[0] = tt; rgb[1] = p; rgb[2] = v; break;
    default: rgb[0] = v; rgb[1] = p; rgb[2] = q; break;
  }
}

// One pixel of C (1 or 3) channels, each step as its image-wide CPU version.
SIMCLR_AUG_HD inline void brightness_px(float* px, int C, float f) {
  for (int c = 0; c < C; c++) px[c] = clamp01(f * px[c]);
}
// m: the view's mean (of the luma, C = 3; of the values, C = 1).
SIMCLR_AUG_HD inline void contrast_px(float* px, int C, float f, float m) {
  for (int c = 0; c < C; c++) px[c] = blend(px[c], m, f);
}
SIMCLR_AUG_HD inline void saturation_px(float* px, int C, float f) {
  if (C != 3) return;
  float l = luma(px[0], px[1], px[2]);
  px[0] = blend(px[0], l, f);
  px[1] = blend(px[1], l, f);
  px[2] = blend(px[2], l, f);
}
SIMCLR_AUG_HD inline void hue_px(float* px, int C, float h) {
  if (C == 3) hue_pixel(px, h);
}
SIMCLR_AUG_HD inline void grayscale_px(float* px, int C) {
  if (C != 3) return;
  float l = luma(px[0], px[1], px[2]);
  px[0] = px[1] = px[2] = l;
}
// What contrast averages: the luma (C = 3) or the value (C = 1).
SIMCLR_AUG_HD inline float mean_term_px(const float* px, int C) { return C == 3 ? luma(px[0], px[1], px[2]) : px[0]; }
SIMCLR_AUG_HD inline void solarize_px(float* px, int C, float t) {
  for (int c = 0; c < C; c++)
    if (px[c] >= t) px[c] = 1.f - px[c];
}
// The jitter steps order[first .. last) that act pixel by pixel (contrast is
// the caller's: it needs the view mean first). Returns the index of the first
// contrast step in [first, last), or last.
SIMCLR_AUG_HD inline int jitter_px_until_contrast(float* px, int C, const ViewParams& p, int first, int last) {
  for (int i = first; i < last; i++) {
    switch (p.order[i]) {
      case kBrightness: brightness_px(px, C, p.brightness); break;
      case kSaturation: saturation_px(px, C, p.saturation); break;
      case kHue: hue_px(px, C, p.hue); break;
      default: return i;  // kContrast
    }
  }
  return last;
}

// Mirror index for reflect padding (torch "reflect": the edge is not repeated):
// ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ... ; any i, n >= 1.
SIMCLR_AUG_HD inline int reflect_index(int i, int n) {
  if (n == 1) return 0;
  int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// Normalised 1-D Gaussian, k taps at x = -(k-1)/2 .. (k-1)/2 (torchvision's
// _get_gaussian_kernel1d in float).
SIMCLR_AUG_HD inline void gaussian_kernel1d(float* w, int k, float sigma) {
  float half = static_cast<float>(k - 1) * 0.5f;
  float sum = 0.f;
  for (int i = 0; i < k; i++) {
    float x = -half + static_cast<float>(i);
    float t = x / sigma;
    w[i] = expf(-0.5f * t * t);
    sum += w[i];
  }
  for (int i = 0; i < k; i++) w[i] /= sum;
}

// Per-channel normalisation as the reference does it: (x - mean) * (1 / std).
struct AugmentNorm {
  int32_t on = 0;
  float mean[3] = {0.f, 0.f, 0.f};
  float inv_std[3] = {1.f, 1.f, 1.f};
};
// mean, std: C values each, or both null (no normalisation).
inline AugmentNorm make_norm(int C, const float* mean, const float* std) {
  AugmentNorm n;
  if (mean == nullptr || std == nullptr) return n;
  n.on = 1;
  for (int c = 0; c < C && c < 3; c++) {
    n.mean[c] = mean[c];
    n.inv_std[c] = 1.f / std[c];
  }
  return n;
}
SIMCLR_AUG_HD inline void normalize_px(float* px, int C, const AugmentNorm& n) {
  if (!n.on) return;
  for (int c = 0; c < C; c++) px[c] = (px[c] - n.mean[c]) * n.inv_std[c];
}

// ---------------------------------------------------------------- the CPU reference, step by step
// (kernels/cpu/augment.cpp). Shape legend: H, W source size; OH, OW output
// size; C channels (1 or 3); npix = OH * OW. All float images are HWC.

// Crop box -> bilinear resize to OH x OW (bilinear_taps / bilinear on
// u8_to01 of the source at (crop_y + y, crop_x + x)) -> optional horizontal
// flip (output column ox takes the resized column OW - 1 - ox).
void crop_resize_flip(float* dst, const uint8_t* src, int H, int W, int C, int OH, int OW, const ViewParams& p);
void adjust_brightness(float* img, int npix, int C, float f);  // clamp(f x)
// clamp(f x + (1 - f) m), m = mean over the image of the luma (C = 3) or of
// the values (C = 1), accumulated in double in pixel order, rounded to float.
void adjust_contrast(float* img, int npix, int C, float f);
void adjust_saturation(float* img, int npix, int C, float f);  // blend(x, luma, f); C = 1: identity
void adjust_hue(float* img, int npix, int C, float h);         // hue_pixel; C = 1: identity
void to_grayscale(float* img, int npix, int C);                // r = g = b = luma; C = 1: identity
void solarize(float* img, int npix, int C, float threshold);   // x >= t -> 1 - x
// Separable blur: horizontal pass into tmp, vertical pass back into img, both
// with reflect padding (k/2 each side), each output the sum over taps in
// order j = 0..k-1 of w[j] * input, accumulated in float from 0.
// tmp holds OH * OW * C floats.
void gaussian_blur(float* img, float* tmp, int OH, int OW, int C, int k, float sigma);
// (x - mean[c]) / std[c], as normalize_px.
void normalize(float* img, int npix, int C, const float* mean, const float* std);
// The whole view: crop_resize_flip, then the jitter steps in p.order (if
// p.jitter), grayscale, blur, solarize; normalised when mean/std are given
// (both non-null). tmp: OH * OW * C floats of scratch. dst: [OH, OW, C].
void apply_view(float* dst, float* tmp, const uint8_t* src, int H, int W, int C, int OH, int OW,
                const ViewParams& p, const float* mean, const float* std);

// ---------------------------------------------------------------- a batch of views
// View v of a batch: its parameters and where its source lies in the packed
// u8 buffer of the batch's sources ([src_h, src_w, C] at byte src_offset;
// several views may share one source).
struct AugmentView {
  ViewParams p;
  int32_t src_h = 0, src_w = 0;
  int64_t src_offset = 0;
};
static_assert(std::is_trivially_copyable_v<AugmentView>, "AugmentView must stay plain data");

// The batch as a whole (host values, passed by value to the launchers).
struct AugmentBatch {
  int32_t views = 0, out_h = 0, out_w = 0, channels = 3;
  // >= blur_kernel of every view with blur set (it sizes the workspace's tap
  // table); 1 when no view blurs (the blur passes are then not launched).
  int32_t max_blur_kernel = 1;
  AugmentNorm norm;
};
// max_blur_kernel for these views (host array).
int32_t augment_max_blur_kernel(const AugmentView* views, int n);

namespace cpu {
// The reference batch: dst[v] = apply_view(source of view v, views[v].p), all
// views in parallel over the host's threads (OpenMP); T = float or bf16 (the
// float view rounded to nearest even). dst: [views, out_h, out_w, C].
void augment_views(float* dst, const uint8_t* src, const AugmentView* views, const AugmentBatch& b);
void augment_views(bf16* dst, const uint8_t* src, const AugmentView* views, const AugmentBatch& b);
}  // namespace cpu

}  // namespace simclr

// ---------------------------------------------------------------- the CUDA kernels
// Device pointers (host memory under the emulator): src the packed sources,
// views[b.views], dst [views, out_h, out_w, C] (fp32 or bf16), workspace
// augment_workspace_bytes(b) bytes (alignment of a device allocation).
// b.max_blur_kernel must be >= the blur_kernel of every blurring view
// (augment_max_blur_kernel; a view above it is left unblurred). Up to five
// launches, all without host waits and without atomics (deterministic):
//   augment_mean_kernel   one block per view with jitter: the crop, resize,
//                         flip and the jitter steps drawn before contrast,
//                         pixel by pixel, and the sum of their luma in
//                         double (per-thread strided partials, then a
//                         fixed-order tree in shared memory) -> mean[v] in float.
//   augment_pixel_kernel  one thread per output pixel, the whole pipeline up
//                         to grayscale; views without blur go on through
//                         solarisation and normalisation straight into dst,
//                         views with blur write the fp32 pixel to scratch.
//   augment_taps_kernel,  (only when b.max_blur_kernel > 1) gaussian_kernel1d
//   augment_blur_h_kernel, per blurring view into the workspace, then the
//   augment_blur_v_kernel  separable Gaussian over the scratch of the
//                         blurring views, the vertical pass finishing with
//                         solarisation, normalisation and the cast into dst.
#define SIMCLR_AUGMENT_LAUNCHERS                                                                             \
  size_t augment_workspace_bytes(const ::simclr::AugmentBatch& b);                                          \
  void augment_views(float* dst, const uint8_t* src, const ::simclr::AugmentView* views,                   \
                     const ::simclr::AugmentBatch& b, void* workspace, cudaStream_t stream);                \
  void augment_views(::simclr::bf16* dst, const uint8_t* src, const ::simclr::AugmentView* views,          \
                     const ::simclr::AugmentBatch& b, void* workspace, cudaStream_t stream);

namespace simclr::gpu { SIMCLR_AUGMENT_LAUNCHERS }
namespace simclr::emu { SIMCLR_AUGMENT_LAUNCHERS }
