// benchmarks/bench_ops.cpp - CPU reference conv2d (im2col + OpenBLAS GEMM)
// on the layers of a ResNet-18 (width 0.25) with the CIFAR stem, f32, NHWC.
//
// For each layer: validate the kernel output for one image against a naive
// loop first, then time forward and backward (dx + dw) separately and print
// ms and achieved GFLOP/s (2·N·Ho·Wo·O·K FLOP per GEMM-equivalent pass:
// forward 1x, backward 2x). Times are the best of --reps runs after one
// warm-up: the development machine is shared, and the minimum is the least
// disturbed estimate.
//
// usage: bench_ops [--batch N] [--reps R]
//   --batch N   images per batch (default 512)
//   --reps R    timed repetitions per measurement (default 5)
// Threads: OMP_NUM_THREADS (OpenBLAS uses the same OpenMP pool).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/device.h"
#include "kernels/conv2d.h"

using namespace simclr;

namespace {

struct Layer {
  const char* name;
  int64_t H, W, C, O, k;
  int stride, pad;
};

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double best_ms(int reps, F&& f) {
  f();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; r++) {
    double t0 = now_ms();
    f();
    t.push_back(now_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return t.front();
}

// Largest |y - naive| / max|naive| over image 0.
double validate(const std::vector<float>& y, const std::vector<float>& x, const std::vector<float>& w,
                const cpu::Conv2dShape& s) {
  const int64_t Ho = s.Ho(), Wo = s.Wo();
  double worst = 0, scale = 1e-30;
  for (int64_t ho = 0; ho < Ho; ho++)
    for (int64_t wo = 0; wo < Wo; wo++)
      for (int64_t o = 0; o < s.O; o++) {
        double acc = 0;
        for (int64_t kh = 0; kh < s.kH; kh++)
          for (int64_t kw = 0; kw < s.kW; kw++) {
            const int64_t ih = ho * s.stride - s.pad + kh, iw = wo * s.stride - s.pad + kw;
            if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
            for (int64_t c = 0; c < s.C; c++)
              acc += static_cast<double>(x[(ih * s.W + iw) * s.C + c]) * w[((o * s.kH + kh) * s.kW + kw) * s.C + c];
          }
        worst = std::max(worst, std::abs(acc - y[(ho * Wo + wo) * s.O + o]));
        scale = std::max(scale, std::abs(acc));
      }
  return worst / scale;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t batch = 512;
  int reps = 5;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--batch" && i + 1 < argc) {
      batch = std::atoll(argv[++i]);
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_ops [--batch N (512)] [--reps R (5)]\n");
      return 1;  // every tool and benchmark: 1 for any error (docs/checkpoint.md, "Exit status")
    }
  }
  if (batch < 1 || reps < 1) {
    std::fprintf(stderr, "error: --batch and --reps must be >= 1\n");
    return 1;  // every tool and benchmark: 1 for any error (docs/checkpoint.md, "Exit status")
  }
  std::printf("conv2d f32 CPU reference, batch %lld, %d OpenMP threads, BLAS: %s\n",
              static_cast<long long>(batch), omp_get_max_threads(), blas_info().c_str());
  const Layer layers[] = {
      {"stem 3->16 3x3/1 @32", 32, 32, 3, 16, 3, 1, 1},
      {"layer1 16->16 3x3/1 @28", 28, 28, 16, 16, 3, 1, 1},
      {"layer1 16->16 3x3/1 @32", 32, 32, 16, 16, 3, 1, 1},
      {"layer2 16->32 3x3/2 @32", 32, 32, 16, 32, 3, 2, 1},
      {"layer2 shortcut 1x1/2 @32", 32, 32, 16, 32, 1, 2, 0},
      {"layer2 32->32 3x3/1 @16", 16, 16, 32, 32, 3, 1, 1},
      {"layer4 128->128 3x3/1 @4", 4, 4, 128, 128, 3, 1, 1},
      {"pointwise 32->32 1x1 @16", 16, 16, 32, 32, 1, 1, 0},
  };
  std::printf("%-28s %10s %10s %10s %10s %10s\n", "layer", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s", "check");
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  double total_ms = 0;
  for (const Layer& L : layers) {
    const cpu::Conv2dShape s{batch, L.H, L.W, L.C, L.O, L.k, L.k, L.stride, L.pad};
    std::vector<float> x(static_cast<size_t>(batch * L.H * L.W * L.C)), w(static_cast<size_t>(L.O * s.K()));
    std::vector<float> y(static_cast<size_t>(batch * s.Ho() * s.Wo() * L.O)), dy(y.size());
    std::vector<float> dx(x.size()), dw(w.size());
    for (float& v : x) v = u(gen);
    for (float& v : w) v = u(gen);
    for (float& v : dy) v = u(gen);
    cpu::conv2d_forward(y.data(), x.data(), w.data(), s);
    const double err = validate(y, x, w, s);
    if (err > 1e-5) {
      std::printf("%-28s validation FAILED: relative error %.3g\n", L.name, err);
      return 1;
    }
    const double fwd = best_ms(reps, [&] { cpu::conv2d_forward(y.data(), x.data(), w.data(), s); });
    const double bwd = best_ms(reps, [&] {
      std::memset(dx.data(), 0, dx.size() * sizeof(float));
      std::memset(dw.data(), 0, dw.size() * sizeof(float));
      cpu::conv2d_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), s);
    });
    const double gflop = 2.0 * static_cast<double>(batch * s.Ho() * s.Wo() * L.O * s.K()) * 1e-9;
    std::printf("%-28s %10.2f %10.2f %10.1f %10.1f %10.1e\n", L.name, fwd, bwd, gflop / fwd * 1e3,
                2 * gflop / bwd * 1e3, err);
    total_ms += fwd + bwd;
  }
  std::printf("total fwd+bwd over the listed layers: %.1f ms\n", total_ms);
  return 0;
}
