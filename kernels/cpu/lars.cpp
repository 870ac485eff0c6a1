// kernels/cpu/lars.cpp - the plain-loop LARS reference (contract: kernels/lars.h)
// and the chunk table of the CUDA form.
#include "kernels/lars.h"

#include <algorithm>
#include <cmath>

#include "engine/check.h"

namespace simclr {

std::vector<LarsChunk> lars_chunks(std::vector<LarsSegment>& segments, int64_t chunk) {
  SIMCLR_CHECK(chunk >= 1, "lars_chunks: chunk must be >= 1, got ", chunk);
  std::vector<LarsChunk> out;
  for (size_t s = 0; s < segments.size(); s++) {
    LarsSegment& seg = segments[s];
    SIMCLR_CHECK(seg.n >= 0 && seg.offset >= 0, "lars_chunks: segment ", s, " has offset ", seg.offset, " and size ",
                 seg.n);
    seg.chunk_begin = static_cast<int32_t>(out.size());
    int64_t b = seg.offset;
    const int64_t e = seg.offset + seg.n;
    do {
      LarsChunk c;
      c.begin = b;
      c.end = std::min(e, b + chunk);
      c.segment = static_cast<int32_t>(s);
      c.first = b == seg.offset ? 1 : 0;
      out.push_back(c);
      b = c.end;
    } while (b < e);
    seg.chunk_end = static_cast<int32_t>(out.size());
  }
  return out;
}

namespace cpu {

void lars_step(float* w_all, const float* g_all, float* v_all, const LarsSegment* segments, int num_segments,
               double lr, const LarsHyper& h, double* trust_out) {
  const double m = h.momentum, wd = h.weight_decay, eta = h.eta;
  for (int s = 0; s < num_segments; s++) {
    const LarsSegment& seg = segments[s];
    float* w = w_all + seg.offset;
    const float* g = g_all + seg.offset;
    float* v = v_all + seg.offset;
    const int64_t n = seg.n;
    double lr_w = lr, trust = 1.0;
    if (seg.adapt) {
      double wn = 0, gn = 0;
      for (int64_t i = 0; i < n; i++) {
        const double gi = static_cast<double>(g[i]) + wd * static_cast<double>(w[i]);
        wn += static_cast<double>(w[i]) * w[i];
        gn += gi * gi;
      }
      wn = std::sqrt(wn);
      gn = std::sqrt(gn);
      if (wn > 0 && gn > 0) trust = eta * wn / gn;
      lr_w = lr * trust;
    }
    if (trust_out != nullptr) trust_out[s] = trust;
    const double dw = seg.adapt ? wd : 0.0;
    for (int64_t i = 0; i < n; i++) {
      const double gi = static_cast<double>(g[i]) + dw * static_cast<double>(w[i]);
      const double vi = m * static_cast<double>(v[i]) + lr_w * gi;
      v[i] = static_cast<float>(vi);
      const double update = h.nesterov ? m * vi + lr_w * gi : vi;
      w[i] = static_cast<float>(static_cast<double>(w[i]) - update);
    }
  }
}

}  // namespace cpu
}  // namespace simclr
