// kernels/cpu/conv2d.cpp - CPU reference of kernels/conv2d.h: im2col + GEMM
// (OpenBLAS), NHWC / OHWI. Shape legend and threading: see the header.
#include "kernels/conv2d.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "engine/blas.h"
#include "kernels/cpu/acc.h"

namespace simclr::cpu {

namespace {

// One chunk's col matrix holds at most this many elements (1 MiB of f32),
// but always at least one image.
constexpr int64_t kColBudget = int64_t(1) << 18;

int64_t images_per_chunk(const Conv2dShape& s) {
  const int64_t per_image = s.Ho() * s.Wo() * std::max(s.K(), s.O);
  return std::max<int64_t>(1, kColBudget / std::max<int64_t>(per_image, 1));
}

// Below this many multiply-adds a convolution runs on one thread: a parallel
// region costs more than it saves (and tiny calls dominate gradient checks).
constexpr int64_t kParallelMacs = int64_t(1) << 18;

// Threads for the per-image split: never more than there are images. A team
// of one runs as a plain loop, and OpenBLAS then threads each GEMM itself
// (it keeps small GEMMs on one thread).
int image_threads(const Conv2dShape& s) {
  if (s.N * s.Ho() * s.Wo() * s.O * s.K() < kParallelMacs) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), s.N)));
}

// Images [begin, end) of thread t among nt: contiguous, sizes differing by <= 1.
void thread_range(int64_t N, int nt, int t, int64_t& begin, int64_t& end) {
  begin = N * t / nt;
  end = N * (t + 1) / nt;
}

// col[nb*Ho*Wo, K] = receptive fields of images [n0, n0+nb) of x[N,H,W,C].
template <class T>
void im2col(T* col, const T* x, int64_t n0, int64_t nb, const Conv2dShape& s) {
  const int64_t H = s.H, W = s.W, C = s.C, kH = s.kH, kW = s.kW;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), K = s.K();
  for (int64_t n = 0; n < nb; n++) {
    const T* xn = x + (n0 + n) * H * W * C;  // [H,W,C]
    for (int64_t ho = 0; ho < Ho; ho++) {
      for (int64_t wo = 0; wo < Wo; wo++) {
        T* row = col + ((n * Ho + ho) * Wo + wo) * K;  // [kH,kW,C]
        const int64_t iw0 = wo * s.stride - s.pad;
        const bool w_inside = iw0 >= 0 && iw0 + kW <= W;
        for (int64_t kh = 0; kh < kH; kh++) {
          const int64_t ih = ho * s.stride - s.pad + kh;
          T* dst = row + kh * kW * C;  // [kW,C]
          if (ih < 0 || ih >= H) {
            std::memset(dst, 0, sizeof(T) * kW * C);
          } else if (w_inside) {  // the whole kernel row is one contiguous run of x
            std::memcpy(dst, xn + (ih * W + iw0) * C, sizeof(T) * kW * C);
          } else {
            for (int64_t kw = 0; kw < kW; kw++) {
              const int64_t iw = iw0 + kw;
              if (iw < 0 || iw >= W)
                std::memset(dst + kw * C, 0, sizeof(T) * C);
              else
                std::memcpy(dst + kw * C, xn + (ih * W + iw) * C, sizeof(T) * C);
            }
          }
        }
      }
    }
  }
}

// dx[images n0..n0+nb) += col2im(dcol[nb*Ho*Wo, K]): the transpose of im2col.
template <class T>
void col2im_add(T* dx, const T* dcol, int64_t n0, int64_t nb, const Conv2dShape& s) {
  const int64_t H = s.H, W = s.W, C = s.C, kH = s.kH, kW = s.kW;
  const int64_t Ho = s.Ho(), Wo = s.Wo(), K = s.K();
  for (int64_t n = 0; n < nb; n++) {
    T* dxn = dx + (n0 + n) * H * W * C;  // [H,W,C]
    for (int64_t ho = 0; ho < Ho; ho++) {
      for (int64_t wo = 0; wo < Wo; wo++) {
        const T* row = dcol + ((n * Ho + ho) * Wo + wo) * K;  // [kH,kW,C]
        for (int64_t kh = 0; kh < kH; kh++) {
          const int64_t ih = ho * s.stride - s.pad + kh;
          if (ih < 0 || ih >= H) continue;
          for (int64_t kw = 0; kw < kW; kw++) {
            const int64_t iw = wo * s.stride - s.pad + kw;
            if (iw < 0 || iw >= W) continue;
            const T* src = row + (kh * kW + kw) * C;  // [C]
            T* dst = dxn + (ih * W + iw) * C;         // [C]
            for (int64_t c = 0; c < C; c++) dst[c] += src[c];
          }
        }
      }
    }
  }
}

}  // namespace

template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const Conv2dShape& s) {
  const int64_t O = s.O, K = s.K(), HoWo = s.Ho() * s.Wo();
  const bool direct = s.is_pointwise();  // x is its own col matrix [N*H*W, C]
  const int nt = image_threads(s);
  const int64_t chunk = images_per_chunk(s);
  const int64_t col_elems = direct ? 0 : chunk * HoWo * K;
  std::unique_ptr<T[]> scratch(new T[static_cast<size_t>(nt * col_elems)]);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    int64_t begin, end;
    thread_range(s.N, nt, t, begin, end);
    for (int64_t n0 = begin; n0 < end; n0 += chunk) {
      const int64_t nb = std::min(chunk, end - n0);
      const T* col = x + n0 * HoWo * K;  // [nb*Ho*Wo, K]
      if (!direct) {
        im2col(scratch.get() + t * col_elems, x, n0, nb, s);
        col = scratch.get() + t * col_elems;
      }
      // y[nb*Ho*Wo, O] = col · wᵀ
      gemm<T>(false, true, nb * HoWo, O, K, T(1), col, K, w, K, T(0), y + n0 * HoWo * O, O);
    }
  }
}

template <class T>
void conv2d_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const Conv2dShape& s) {
  if (!dx && !dw) return;
  const int64_t O = s.O, K = s.K(), HoWo = s.Ho() * s.Wo();
  const bool direct = s.is_pointwise();  // x is col and dx is dcol: no im2col / col2im
  const int nt = image_threads(s);
  const int64_t chunk = images_per_chunk(s);
  const int64_t col_elems = direct ? 0 : chunk * HoWo * K;
  std::unique_ptr<T[]> scratch(new T[static_cast<size_t>(nt * col_elems)]);
  // Per-thread partial dw when several threads share it; one thread adds into dw directly.
  std::vector<T> dw_part(dw && nt > 1 ? static_cast<size_t>(nt * O * K) : 0, T(0));
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    T* col = scratch.get() + t * col_elems;              // [chunk*Ho*Wo, K]: col of x, then dcol
    T* dw_t = nt > 1 ? dw_part.data() + t * O * K : dw;  // [O,K]
    int64_t begin, end;
    thread_range(s.N, nt, t, begin, end);
    for (int64_t n0 = begin; n0 < end; n0 += chunk) {
      const int64_t nb = std::min(chunk, end - n0), P = nb * HoWo;
      const T* dyc = dy + n0 * HoWo * O;  // [P, O]
      if (dw) {
        const T* xc = x + n0 * HoWo * K;  // [P, K] (direct)
        if (!direct) {
          im2col(col, x, n0, nb, s);
          xc = col;
        }
        gemm<T>(true, false, O, K, P, T(1), dyc, O, xc, K, T(1), dw_t, K);  // dw += dyᵀ · col
      }
      if (dx && direct) {
        gemm<T>(false, false, P, K, O, T(1), dyc, O, w, K, T(1), dx + n0 * HoWo * K, K);  // dx += dy · w
      } else if (dx) {
        gemm<T>(false, false, P, K, O, T(1), dyc, O, w, K, T(0), col, K);  // dcol = dy · w
        col2im_add(dx, col, n0, nb, s);
      }
    }
  }
  if (dw && nt > 1) {
    const int64_t n = O * K;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
      T acc = dw[i];
      for (int t = 0; t < nt; t++) acc += dw_part[static_cast<size_t>(t * n + i)];
      dw[i] = acc;
    }
  }
}

namespace {
template <class T>
bool use_fast(const Conv2dShape& s) {
  if constexpr (std::is_same_v<T, float>) return conv2d_fast_available() && conv2d_fast_supports(s);
  return false;
}
}  // namespace

template <class T>
void conv2d_forward_cpu(T* y, const T* x, const T* w, const Conv2dShape& s) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_fast<T>(s)) return conv2d_forward_fast(y, x, w, s);
  }
  conv2d_forward(y, x, w, s);
}

template <class T>
void conv2d_backward_cpu(T* dx, bool dx_accumulate, T* dw, const T* dy, const T* x, const T* w,
                         const Conv2dShape& s) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_fast<T>(s)) return conv2d_backward_fast(dx, dx_accumulate, dw, dy, x, w, s);
  }
  if (dx && !dx_accumulate) std::fill(dx, dx + s.N * s.H * s.W * s.C, T(0));
  conv2d_backward(dx, dw, dy, x, w, s);
}

namespace {
bool use_fast_bf16(const Conv2dShape& s) { return conv2d_fast_available() && conv2d_fast_supports(s, DType::bf16); }
}  // namespace

template <>
void conv2d_forward_cpu<bf16>(bf16* y, const bf16* x, const bf16* w, const Conv2dShape& s) {
  if (use_fast_bf16(s)) return conv2d_forward_fast(y, x, w, s);
  const std::vector<float> xf = widen(x, s.N * s.H * s.W * s.C), wf = widen(w, s.O * s.K());
  const int64_t n = s.N * s.Ho() * s.Wo() * s.O;
  std::vector<float> yf(static_cast<size_t>(n));
  conv2d_forward_cpu<float>(yf.data(), xf.data(), wf.data(), s);
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; i++) y[i] = st<bf16>(yf[i]);
}

template <>
void conv2d_backward_cpu<bf16>(bf16* dx, bool dx_accumulate, bf16* dw, const bf16* dy, const bf16* x, const bf16* w,
                               const Conv2dShape& s) {
  if (!dx && !dw) return;
  if (use_fast_bf16(s)) return conv2d_backward_fast(dx, dx_accumulate, dw, dy, x, w, s);
  const int64_t nx = s.N * s.H * s.W * s.C, nw = s.O * s.K();
  const std::vector<float> dyf = widen(dy, s.N * s.Ho() * s.Wo() * s.O), xf = widen(dw ? x : nullptr, nx),
                           wf = widen(dx ? w : nullptr, nw);
  std::vector<float> dxf(static_cast<size_t>(dx ? nx : 0)), dwf(static_cast<size_t>(dw ? nw : 0), 0.0f);
  conv2d_backward_cpu<float>(dx ? dxf.data() : nullptr, false, dw ? dwf.data() : nullptr, dyf.data(), xf.data(),
                             wf.data(), s);
  if (dx) {
#pragma omp parallel for simd if (nx > 65536)
    for (int64_t i = 0; i < nx; i++) dx[i] = st<bf16>(dx_accumulate ? ld(dx[i]) + dxf[i] : dxf[i]);
  }
  for (int64_t i = 0; dw && i < nw; i++) dw[i] = st<bf16>(ld(dw[i]) + dwf[i]);
}

#define INSTANTIATE(T)                                                                               \
  template void conv2d_forward<T>(T*, const T*, const T*, const Conv2dShape&);                      \
  template void conv2d_backward<T>(T*, T*, const T*, const T*, const T*, const Conv2dShape&);       \
  template void conv2d_forward_cpu<T>(T*, const T*, const T*, const Conv2dShape&);                  \
  template void conv2d_backward_cpu<T>(T*, bool, T*, const T*, const T*, const T*, const Conv2dShape&);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace simclr::cpu
