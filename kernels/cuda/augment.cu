// kernels/cuda/augment.cu - a batch of augmented views on the device
// (contract: kernels/augment.h; CPU twin: kernels/cpu/augment.cpp). Also
// compiled by the kernel emulator (tests/emu/test_augment_emu.cpp).
//
// Launches (all on `stream`, no host wait, no atomics):
//   augment_mean_kernel     block per view (256 threads): the contrast mean.
//                           Contrast blends with the mean luma of the view as
//                           it is when contrast runs, so this pre-pass
//                           recomputes each output pixel up to the contrast
//                           step (crop + resize + flip + the jitter steps
//                           drawn before contrast) and sums the luma in
//                           double: thread t takes pixels t, t + 256, ...,
//                           then a fixed-order tree in shared memory. The
//                           reference sums the same floats in pixel order in
//                           double: both round to the same float mean except
//                           in rare last-bit cases of the double sum.
//                           Views without jitter leave at once.
//   augment_taps_kernel     thread per blurring view: gaussian_kernel1d into
//                           the workspace (only when some view blurs).
//   augment_pixel_kernel    thread per output pixel, grid (pixels / 256,
//                           views): crop, bilinear resize, flip, the jitter
//                           steps in the drawn order (contrast with the
//                           pre-pass mean), grayscale; then either straight
//                           on through solarisation, normalisation and the
//                           cast into dst, or (views with blur) the fp32
//                           pixel into scratch A.
//   augment_blur_h_kernel   A -> B, horizontal taps with reflect padding;
//   augment_blur_v_kernel   B -> dst, vertical taps, then solarisation,
//                           normalisation and the cast (blurring views only;
//                           both only when some view blurs).
// Each tap sum starts from 0 and adds w[j] * x in tap order, as the
// reference does. Memory: the sources are read about twice for views with
// jitter (pre-pass + main pass, through L2), the output written once; with
// blur, two fp32 round trips of the view through the scratch.
#include "kernels/augment.h"

#include "kernels/cuda/common.cuh"

namespace simclr::SIMCLR_KNS {

namespace {
constexpr int kAugThreads = 256;

constexpr size_t align256(size_t n) { return (n + 255) / 256 * 256; }

struct Workspace {
  float* mean;  // [views]
  float* taps;  // [views, max_blur_kernel]
  float* a;     // [views, OH, OW, C] (fp32 scratch, blurring views)
  float* b;     // same
};

Workspace carve(void* ws, const AugmentBatch& b) {
  const size_t nv = static_cast<size_t>(b.views);
  const size_t pix = nv * static_cast<size_t>(b.out_h) * b.out_w * b.channels;
  auto* base = static_cast<unsigned char*>(ws);
  Workspace w{};
  w.mean = reinterpret_cast<float*>(base);
  base += align256(nv * sizeof(float));
  if (b.max_blur_kernel > 1) {
    w.taps = reinterpret_cast<float*>(base);
    base += align256(nv * static_cast<size_t>(b.max_blur_kernel) * sizeof(float));
    w.a = reinterpret_cast<float*>(base);
    base += align256(pix * sizeof(float));
    w.b = reinterpret_cast<float*>(base);
  }
  return w;
}

// Output pixel (oy, ox) of view av after crop, bilinear resize and flip.
__device__ __forceinline__ void sample_px(float* px, const uint8_t* src, const AugmentView& av, int C, int OH, int OW,
                                          int oy, int ox) {
  const ViewParams& p = av.p;
  const float scale_x = static_cast<float>(p.crop_w) / static_cast<float>(OW);
  const float scale_y = static_cast<float>(p.crop_h) / static_cast<float>(OH);
  const int sx = p.flip ? OW - 1 - ox : ox;
  int x0, x1, y0, y1;
  float wx, wy;
  bilinear_taps(sx, scale_x, p.crop_w, &x0, &x1, &wx);
  bilinear_taps(oy, scale_y, p.crop_h, &y0, &y1, &wy);
  const uint8_t* img = src + av.src_offset;
  const uint8_t* row0 = img + static_cast<size_t>(p.crop_y + y0) * av.src_w * C;
  const uint8_t* row1 = img + static_cast<size_t>(p.crop_y + y1) * av.src_w * C;
  const int a = (p.crop_x + x0) * C, b = (p.crop_x + x1) * C;
  for (int c = 0; c < C; c++)
    px[c] = bilinear(u8_to01(row0[a + c]), u8_to01(row0[b + c]), u8_to01(row1[a + c]), u8_to01(row1[b + c]), wx, wy);
}

// The view blurs (a 1-tap kernel is the identity; kmax bounds the tap table).
__device__ __forceinline__ bool blurs(const ViewParams& p, int kmax) {
  return p.blur && p.blur_kernel > 1 && p.blur_kernel <= kmax;
}

template <class S>
__device__ __forceinline__ void finish_px(S* dst, float* px, int C, const ViewParams& p, const AugmentNorm& norm) {
  if (p.solarize) solarize_px(px, C, p.solarize_threshold);
  normalize_px(px, C, norm);
  for (int c = 0; c < C; c++) dst[c] = from_float<S>(px[c]);
}
}  // namespace

__global__ void __launch_bounds__(256)
    augment_mean_kernel(float* mean, const uint8_t* src, const AugmentView* views, int C, int OH, int OW) {
  SIMCLR_SHARED(double, red, [kAugThreads]);
  const AugmentView av = views[blockIdx.x];
  if (!av.p.jitter) return;  // the whole block: no barrier is reached
  const int npix = OH * OW;
  double sum = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < npix; i += kAugThreads) {
    float px[3];
    sample_px(px, src, av, C, OH, OW, i / OW, i % OW);
    jitter_px_until_contrast(px, C, av.p, 0, 4);  // the steps drawn before contrast
    sum += static_cast<double>(mean_term_px(px, C));
  }
  red[threadIdx.x] = sum;
  __syncthreads();
  for (int s = kAugThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) mean[blockIdx.x] = static_cast<float>(red[0] / npix);
}

__global__ void augment_taps_kernel(float* taps, const AugmentView* views, int n, int kmax) {
  const int v = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (v >= n) return;
  const ViewParams p = views[v].p;
  if (blurs(p, kmax)) gaussian_kernel1d(taps + static_cast<size_t>(v) * kmax, p.blur_kernel, p.blur_sigma);
}

template <class S>
__global__ void __launch_bounds__(256)
    augment_pixel_kernel(S* dst, float* scratch, const float* mean, const uint8_t* src, const AugmentView* views,
                         int C, int OH, int OW, int kmax, AugmentNorm norm) {
  const int v = static_cast<int>(blockIdx.y);
  const int npix = OH * OW;
  const int i = static_cast<int>(blockIdx.x) * kAugThreads + static_cast<int>(threadIdx.x);
  if (i >= npix) return;
  const AugmentView av = views[v];
  const ViewParams& p = av.p;
  float px[3];
  sample_px(px, src, av, C, OH, OW, i / OW, i % OW);
  if (p.jitter) {
    int k = jitter_px_until_contrast(px, C, p, 0, 4);
    while (k < 4) {  // order holds each step once: contrast at most once
      contrast_px(px, C, p.contrast, mean[v]);
      k = jitter_px_until_contrast(px, C, p, k + 1, 4);
    }
  }
  if (p.grayscale) grayscale_px(px, C);
  const size_t at = (static_cast<size_t>(v) * npix + i) * C;
  if (blurs(p, kmax)) {
    for (int c = 0; c < C; c++) scratch[at + c] = px[c];
    return;
  }
  finish_px(dst + at, px, C, p, norm);
}

__global__ void __launch_bounds__(256)
    augment_blur_h_kernel(float* out, const float* in, const float* taps, const AugmentView* views, int C, int OH,
                          int OW, int kmax) {
  const int v = static_cast<int>(blockIdx.y);
  const int npix = OH * OW;
  const int i = static_cast<int>(blockIdx.x) * kAugThreads + static_cast<int>(threadIdx.x);
  if (i >= npix) return;
  const ViewParams p = views[v].p;
  if (!blurs(p, kmax)) return;
  const int k = p.blur_kernel, r = k / 2, y = i / OW, x = i % OW;
  const float* w = taps + static_cast<size_t>(v) * kmax;
  const float* row = in + (static_cast<size_t>(v) * npix + static_cast<size_t>(y) * OW) * C;
  float acc[3] = {0.f, 0.f, 0.f};
  for (int j = 0; j < k; j++) {
    const float* s = row + static_cast<size_t>(reflect_index(x + j - r, OW)) * C;
    for (int c = 0; c < C; c++) acc[c] += w[j] * s[c];
  }
  float* o = out + (static_cast<size_t>(v) * npix + i) * C;
  for (int c = 0; c < C; c++) o[c] = acc[c];
}

template <class S>
__global__ void __launch_bounds__(256)
    augment_blur_v_kernel(S* dst, const float* in, const float* taps, const AugmentView* views, int C, int OH, int OW,
                          int kmax, AugmentNorm norm) {
  const int v = static_cast<int>(blockIdx.y);
  const int npix = OH * OW;
  const int i = static_cast<int>(blockIdx.x) * kAugThreads + static_cast<int>(threadIdx.x);
  if (i >= npix) return;
  const ViewParams p = views[v].p;
  if (!blurs(p, kmax)) return;
  const int k = p.blur_kernel, r = k / 2, y = i / OW, x = i % OW;
  const float* w = taps + static_cast<size_t>(v) * kmax;
  const float* img = in + static_cast<size_t>(v) * npix * C;
  float acc[3] = {0.f, 0.f, 0.f};
  for (int j = 0; j < k; j++) {
    const float* s = img + (static_cast<size_t>(reflect_index(y + j - r, OH)) * OW + x) * C;
    for (int c = 0; c < C; c++) acc[c] += w[j] * s[c];
  }
  finish_px(dst + (static_cast<size_t>(v) * npix + i) * C, acc, C, p, norm);
}

size_t augment_workspace_bytes(const AugmentBatch& b) {
  const size_t nv = static_cast<size_t>(b.views > 0 ? b.views : 0);
  size_t bytes = align256(nv * sizeof(float));
  if (b.max_blur_kernel > 1) {
    const size_t pix = nv * static_cast<size_t>(b.out_h) * b.out_w * b.channels;
    bytes += align256(nv * static_cast<size_t>(b.max_blur_kernel) * sizeof(float)) + 2 * align256(pix * sizeof(float));
  }
  return bytes;
}

namespace {
template <class T>
void augment_views_t(T* dst_t, const uint8_t* src, const AugmentView* views, const AugmentBatch& b, void* workspace,
                     cudaStream_t stream) {
  SIMCLR_CHECK(b.views >= 0 && b.views <= 65535, "augment_views: views must be in [0, 65535], got ", b.views);
  SIMCLR_CHECK(b.out_h > 0 && b.out_w > 0 && (b.channels == 1 || b.channels == 3) && b.max_blur_kernel >= 1,
               "augment_views: bad batch (output ", b.out_h, "x", b.out_w, "x", b.channels, ", max_blur_kernel ",
               b.max_blur_kernel, ")");
  if (b.views == 0) return;
  SIMCLR_CHECK(dst_t != nullptr && src != nullptr && views != nullptr && workspace != nullptr,
               "augment_views: a required pointer is null");
  auto* dst = dev(dst_t);
  using S = std::remove_pointer_t<decltype(dst)>;
  const Workspace w = carve(workspace, b);
  const int C = b.channels, OH = b.out_h, OW = b.out_w;
  const unsigned row_blocks = static_cast<unsigned>(ceil_div(static_cast<int64_t>(OH) * OW, kAugThreads));
  const dim3 grid(row_blocks, static_cast<unsigned>(b.views)), block(kAugThreads);
  launch(augment_mean_kernel, dim3(static_cast<unsigned>(b.views)), block, 0, stream, w.mean, src, views, C, OH, OW);
  if (b.max_blur_kernel > 1)
    launch_nobarrier(augment_taps_kernel, dim3(static_cast<unsigned>(ceil_div(b.views, 64))), dim3(64), 0, stream,
                     w.taps, views, static_cast<int>(b.views), static_cast<int>(b.max_blur_kernel));
  launch_nobarrier(augment_pixel_kernel<S>, grid, block, 0, stream, dst, w.a, static_cast<const float*>(w.mean), src,
                   views, C, OH, OW, static_cast<int>(b.max_blur_kernel), b.norm);
  if (b.max_blur_kernel > 1) {
    launch_nobarrier(augment_blur_h_kernel, grid, block, 0, stream, w.b, static_cast<const float*>(w.a),
                     static_cast<const float*>(w.taps), views, C, OH, OW, static_cast<int>(b.max_blur_kernel));
    launch_nobarrier(augment_blur_v_kernel<S>, grid, block, 0, stream, dst, static_cast<const float*>(w.b),
                     static_cast<const float*>(w.taps), views, C, OH, OW, static_cast<int>(b.max_blur_kernel),
                     b.norm);
  }
}
}  // namespace

void augment_views(float* dst, const uint8_t* src, const AugmentView* views, const AugmentBatch& b, void* workspace,
                   cudaStream_t stream) {
  augment_views_t(dst, src, views, b, workspace, stream);
}
void augment_views(::simclr::bf16* dst, const uint8_t* src, const AugmentView* views, const AugmentBatch& b,
                   void* workspace, cudaStream_t stream) {
  augment_views_t(dst, src, views, b, workspace, stream);
}

}  // namespace simclr::SIMCLR_KNS
