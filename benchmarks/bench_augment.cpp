// benchmarks/bench_augment.cpp - SimCLR views per second: the CPU reference
// (kernels/cpu/augment.cpp, apply_view per view on all cores through OpenMP)
// and, with a GPU, the batched CUDA kernels (kernels/cuda/augment.cu) on the
// same sources and parameters, at 32 x 32, 96 x 96 and 224 x 224 outputs.
// Without a GPU only the CPU reference is timed (the emulated kernels say
// nothing about speed). The torchvision v2 comparison on GPU tensors is
// benchmarks/augment_torch.py (same pipeline; torchvision draws one set of
// parameters per batch call, we draw per view).
//
//   bench_augment [--sizes 32,96,224] [--views N (per size: 1024/512/128)]
//                 [--iters 5] [--warmup 1] [--dtype f32|bf16] [--json]
//
// Sources: 32 -> 32 x 32 (CIFAR), 96 -> 96 x 96 (STL-10), 224 -> 375 x 500
// (a typical ImageNet image); two views per source, parameters drawn by
// sample_view with the SimCLR defaults (blur p 0.5, kernel 10% of the side).
// Reported per size: median ms per batch and views/s; GPU: kernels only
// (sources and parameters already on the device), and with the host-to-device
// copy of the sources and parameters (pageable memory, synchronous).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#ifdef SIMCLR_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#endif

#include "data/augment.h"
#include "engine/device.h"
#include "kernels/augment.h"

using namespace simclr;

namespace {

struct Options {
  std::vector<int> sizes = {32, 96, 224};
  int views = 0;  // 0: per-size default
  int iters = 5, warmup = 1;
  bool bf16_out = false, json = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sizes") {
      o.sizes.clear();
      std::stringstream ss(next());
      std::string t;
      while (std::getline(ss, t, ',')) o.sizes.push_back(std::stoi(t));
    } else if (a == "--views") o.views = std::stoi(next());
    else if (a == "--iters") o.iters = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--dtype") o.bf16_out = next() == "bf16";
    else if (a == "--json") o.json = true;
    else {
      std::printf("usage: bench_augment [--sizes 32,96,224] [--views N] [--iters N (5)] [--warmup N (1)] "
                  "[--dtype f32|bf16] [--json]\n");
      std::exit(a == "-h" || a == "--help" ? 0 : 2);
    }
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Batch {
  std::vector<uint8_t> src;
  std::vector<AugmentView> views;
  AugmentBatch b;
};

Batch make_batch(int S, int views, uint64_t seed) {
  Batch k;
  const int H = S == 224 ? 375 : S, W = S == 224 ? 500 : S, C = 3;
  const int sources = (views + 1) / 2;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  k.src.resize(static_cast<size_t>(sources) * H * W * C);
  for (auto& v : k.src) v = static_cast<uint8_t>(rng());
  AugmentConfig cfg;
  for (int v = 0; v < views; v++) {
    AugmentView av;
    av.p = sample_view(cfg, seed, 0, v / 2, v % 2, H, W, S, S);
    av.src_h = H, av.src_w = W;
    av.src_offset = static_cast<int64_t>(v / 2) * H * W * C;
    k.views.push_back(av);
  }
  k.b.views = views, k.b.out_h = S, k.b.out_w = S, k.b.channels = C;
  k.b.max_blur_kernel = augment_max_blur_kernel(k.views.data(), views);
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  k.b.norm = make_norm(C, mean, stdv);
  return k;
}

void print_row(const Options& o, const char* impl, int S, int views, double ms) {
  const double vps = views / (ms * 1e-3);
  if (o.json)
    std::printf("{\"bench\":\"augment\",\"impl\":\"%s\",\"size\":%d,\"views\":%d,\"dtype\":\"%s\",\"ms\":%.4f,"
                "\"views_per_s\":%.1f}\n",
                impl, S, views, o.bf16_out ? "bf16" : "f32", ms, vps);
  else
    std::printf("  %3dx%-3d %-28s %6d views  %10.3f ms  %12.0f views/s\n", S, S, impl, views, ms, vps);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const bool gpu = cuda_available();
  if (!o.json) {
    std::printf("bench_augment: SimCLR views (crop+flip+jitter+gray+blur+normalise), %s output, CPU reference on %d "
                "threads%s\n",
                o.bf16_out ? "bf16" : "f32", omp_get_max_threads(), gpu ? ", CUDA kernels" : "");
  }
  if (!gpu)
    std::fprintf(stderr, "notice: bench_augment: no GPU (%s): timing the CPU reference only\n",
                 cuda_unavailable_reason().c_str());
  for (int S : o.sizes) {
    const int views = o.views > 0 ? o.views : (S <= 32 ? 1024 : S <= 96 ? 512 : 128);
    const Batch k = make_batch(S, views, 1234 + S);
    const size_t n = static_cast<size_t>(views) * S * S * 3;
    {  // CPU reference, all cores
      std::vector<float> out_f(o.bf16_out ? 0 : n);
      std::vector<bf16> out_b(o.bf16_out ? n : 0);
      std::vector<double> ms;
      for (int it = 0; it < o.warmup + o.iters; it++) {
        auto t0 = std::chrono::steady_clock::now();
        if (o.bf16_out) cpu::augment_views(out_b.data(), k.src.data(), k.views.data(), k.b);
        else cpu::augment_views(out_f.data(), k.src.data(), k.views.data(), k.b);
        auto t1 = std::chrono::steady_clock::now();
        if (it >= o.warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      print_row(o, "cpu reference", S, views, median(ms));
    }
#ifdef SIMCLR_WITH_CUDA
    if (gpu) {
      uint8_t* d_src = nullptr;
      AugmentView* d_views = nullptr;
      void* d_out = nullptr;
      void* d_ws = nullptr;
      const size_t ws_bytes = gpu::augment_workspace_bytes(k.b);
      CUDA_CHECK(cudaMalloc(&d_src, k.src.size()));
      CUDA_CHECK(cudaMalloc(&d_views, k.views.size() * sizeof(AugmentView)));
      CUDA_CHECK(cudaMalloc(&d_out, n * (o.bf16_out ? 2 : 4)));
      CUDA_CHECK(cudaMalloc(&d_ws, std::max<size_t>(ws_bytes, 1)));
      cudaStream_t stream;
      CUDA_CHECK(cudaStreamCreate(&stream));
      cudaEvent_t e0, e1;
      CUDA_CHECK(cudaEventCreate(&e0));
      CUDA_CHECK(cudaEventCreate(&e1));
      auto copy_in = [&] {
        CUDA_CHECK(cudaMemcpyAsync(d_src, k.src.data(), k.src.size(), cudaMemcpyHostToDevice, stream));
        CUDA_CHECK(cudaMemcpyAsync(d_views, k.views.data(), k.views.size() * sizeof(AugmentView),
                                   cudaMemcpyHostToDevice, stream));
      };
      auto kernels = [&] {
        if (o.bf16_out) gpu::augment_views(static_cast<bf16*>(d_out), d_src, d_views, k.b, d_ws, stream);
        else gpu::augment_views(static_cast<float*>(d_out), d_src, d_views, k.b, d_ws, stream);
      };
      copy_in();
      for (int with_copy = 0; with_copy < 2; with_copy++) {
        std::vector<double> ms;
        for (int it = 0; it < o.warmup + 3 * o.iters; it++) {
          CUDA_CHECK(cudaEventRecord(e0, stream));
          if (with_copy) copy_in();
          kernels();
          CUDA_CHECK(cudaEventRecord(e1, stream));
          CUDA_CHECK(cudaEventSynchronize(e1));
          float t = 0;
          CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
          if (it >= o.warmup) ms.push_back(t);
        }
        print_row(o, with_copy ? "cuda kernels + H2D copy" : "cuda kernels", S, views, median(ms));
      }
      CUDA_CHECK(cudaEventDestroy(e0));
      CUDA_CHECK(cudaEventDestroy(e1));
      CUDA_CHECK(cudaStreamDestroy(stream));
      CUDA_CHECK(cudaFree(d_src));
      CUDA_CHECK(cudaFree(d_views));
      CUDA_CHECK(cudaFree(d_out));
      CUDA_CHECK(cudaFree(d_ws));
    }
#endif
  }
  return 0;
}
