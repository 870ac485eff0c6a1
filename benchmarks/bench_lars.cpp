// benchmarks/bench_lars.cpp - one LARS step over all trainable parameters of
// a ResNet encoder: the fused kernels (kernels/cuda/lars.cu, two launches for
// the whole model, through optim::Lars on a CUDA store) against the same
// kernels launched once per parameter tensor (what a per-tensor optimiser
// loop does), in the same run, with the ratio; both start from the same
// values and must give the same result. Without a GPU it times the CPU
// reference (kernels/cpu/lars.cpp) with a notice.
//
//   bench_lars [--depth 50] [--width 1] [--iters 50] [--warmup 5] [--json]
//
// Reported: median and p90 milliseconds per step, effective bandwidth
// (28 bytes per parameter: w and g read twice, v read once, w and v written).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#ifdef SIMCLR_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#endif

#include "engine/check.h"
#include "engine/device.h"
#include "engine/param.h"
#include "kernels/lars.h"
#include "models/resnet.h"
#include "optim/lars.h"

using namespace simclr;

namespace {

struct Options {
  int depth = 50;
  double width = 1.0;
  int iters = 50, warmup = 5;
  bool json = false;
};

struct Stats {
  double median_ms = 0, p90_ms = 0;
};

Stats stats_of(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Stats s;
  s.median_ms = ms[ms.size() / 2];
  s.p90_ms = ms[std::min(ms.size() - 1, static_cast<size_t>(std::ceil(0.9 * static_cast<double>(ms.size()))) - 1)];
  return s;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      SIMCLR_CHECK(i + 1 < argc, a, " needs a value");
      return argv[++i];
    };
    auto to_num = [&](const std::string& v) {
      char* end = nullptr;
      const double x = std::strtod(v.c_str(), &end);
      SIMCLR_CHECK(end != v.c_str() && *end == 0, a, ": '", v, "' is not a number");
      return x;
    };
    if (a == "--depth") o.depth = static_cast<int>(to_num(value()));
    else if (a == "--width") o.width = to_num(value());
    else if (a == "--iters") o.iters = static_cast<int>(to_num(value()));
    else if (a == "--warmup") o.warmup = static_cast<int>(to_num(value()));
    else if (a == "--json") o.json = true;
    else if (a == "-h" || a == "--help") {
      std::printf("usage: bench_lars [--depth 18|34|50|101|152 (50)] [--width W (1)] [--iters N (50)] "
                  "[--warmup N (5)] [--json]\n");
      std::exit(0);
    } else {
      fail("unknown flag '", a, "' (see --help)");
    }
  }
  SIMCLR_CHECK(o.depth == 18 || o.depth == 34 || o.depth == 50 || o.depth == 101 || o.depth == 152,
               "--depth must be 18, 34, 50, 101 or 152, got ", o.depth);
  SIMCLR_CHECK(o.width > 0 && o.width <= 8, "--width must be in (0, 8], got ", o.width);
  SIMCLR_CHECK(o.iters >= 1, "--iters must be >= 1, got ", o.iters);
  SIMCLR_CHECK(o.warmup >= 0, "--warmup must be >= 0, got ", o.warmup);
  return o;
}

ParamStore encoder_store(const Options& o, Device device) {
  ResNetConfig rc;
  rc.depth = o.depth;
  rc.width = o.width;
  return resnet_trainables_random(rc, device, 1);
}

void report(const Options& o, const char* impl, const Stats& s, int64_t params, int tensors, int launches) {
  const double gbs = 28.0 * static_cast<double>(params) / (s.median_ms * 1e-3) / 1e9;
  if (o.json) {
    std::printf("{\"bench\":\"lars\",\"impl\":\"%s\",\"depth\":%d,\"width\":%g,\"params\":%lld,\"tensors\":%d,"
                "\"launches\":%d,\"median_ms\":%.5f,\"p90_ms\":%.5f,\"gb_per_s\":%.1f}\n",
                impl, o.depth, o.width, static_cast<long long>(params), tensors, launches, s.median_ms, s.p90_ms, gbs);
  } else {
    std::printf("  %-18s %9.4f ms  p90 %9.4f ms  %8.1f GB/s  (%d launches)\n", impl, s.median_ms, s.p90_ms, gbs,
                launches);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    const LarsConfig cfg;  // momentum 0.9, eta 1e-3, wd 1e-6
    const double lr = 4.8;
    if (!cuda_available()) {
      std::fprintf(stderr, "notice: %s: timing the CPU reference (kernels/cpu/lars.cpp) instead of the CUDA kernels\n",
                   cuda_unavailable_reason().c_str());
      ParamStore s = encoder_store(o, Device::cpu());
      Lars opt(cfg, s);
      const int64_t n = s.values().numel();
      const int tensors = static_cast<int>(opt.segments().size());
      if (!o.json)
        std::printf("bench_lars (CPU reference): ResNet-%d width %g encoder, %d tensors, %.2f M parameters\n", o.depth,
                    o.width, tensors, static_cast<double>(n) / 1e6);
      for (int i = 0; i < o.warmup; i++) opt.step(lr);
      std::vector<double> ms;
      for (int i = 0; i < o.iters; i++) {
        const auto t0 = std::chrono::steady_clock::now();
        opt.step(lr);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      report(o, "cpu-ref", stats_of(ms), n, tensors, 0);
      return 0;
    }
#ifdef SIMCLR_WITH_CUDA
    const Device dev = Device::cuda(0);
    ParamStore fused_store = encoder_store(o, dev), split_store = encoder_store(o, dev);
    Lars fused(cfg, fused_store);
    const int64_t n = fused_store.values().numel();
    const int tensors = static_cast<int>(fused.segments().size());
    cudaStream_t st = static_cast<cudaStream_t>(cuda_current_stream(0));

    // per-tensor baseline: each tensor its own one-segment table and chunks
    // (lars_chunks numbers a table's chunks from 0; element offsets stay absolute)
    std::vector<LarsSegment> all = fused.segments();
    std::vector<std::vector<LarsSegment>> one(all.size());
    std::vector<std::vector<LarsChunk>> chunks(all.size());
    std::vector<Tensor> seg_dev, chunk_dev;
    int64_t max_chunks = 1;
    for (size_t s = 0; s < all.size(); s++) {
      one[s] = {all[s]};
      chunks[s] = lars_chunks(one[s]);
      max_chunks = std::max<int64_t>(max_chunks, static_cast<int64_t>(chunks[s].size()));
      Tensor a = Tensor::empty({static_cast<int64_t>(sizeof(LarsSegment))}, DType::u8, dev);
      copy_bytes(a.data_ptr(), dev, one[s].data(), Device::cpu(), sizeof(LarsSegment));
      Tensor b = Tensor::empty({static_cast<int64_t>(chunks[s].size() * sizeof(LarsChunk))}, DType::u8, dev);
      copy_bytes(b.data_ptr(), dev, chunks[s].data(), Device::cpu(), chunks[s].size() * sizeof(LarsChunk));
      seg_dev.push_back(a);
      chunk_dev.push_back(b);
    }
    Tensor v_split = Tensor::zeros({n}, DType::f32, dev);
    Tensor ws = Tensor::empty({static_cast<int64_t>(gpu::lars_workspace_bytes(max_chunks))}, DType::u8, dev);
    Tensor lr_dev = Tensor::full({1}, lr, DType::f64).to(dev);
    const LarsHyper h{cfg.momentum, cfg.eta, cfg.weight_decay, cfg.nesterov};
    auto split_step = [&] {
      for (size_t s = 0; s < all.size(); s++)
        gpu::lars_step(split_store.values().ptr<float>(), split_store.grads().ptr<float>(), v_split.ptr<float>(),
                       static_cast<const LarsSegment*>(seg_dev[s].data_ptr()),
                       static_cast<const LarsChunk*>(chunk_dev[s].data_ptr()),
                       static_cast<int64_t>(chunks[s].size()), lr_dev.ptr<double>(), h, ws.data_ptr(), nullptr, nullptr,
                       st);
    };
    // same result from the same start: one step each
    fused.step(lr);
    split_step();
    cuda_synchronize(0);
    const std::vector<float> a = fused_store.values().to_floats(), b = split_store.values().to_floats();
    double max_diff = 0;
    for (int64_t i = 0; i < n; i++) max_diff = std::max(max_diff, std::abs(static_cast<double>(a[i]) - b[i]));
    SIMCLR_CHECK(max_diff == 0.0, "bench_lars: fused and per-tensor steps differ (max |diff| ", max_diff, ")");

    auto time_it = [&](const std::function<void()>& f) {
      for (int i = 0; i < o.warmup; i++) f();
      std::vector<cudaEvent_t> ev(2 * o.iters);
      for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
      for (int i = 0; i < o.iters; i++) {
        CUDA_CHECK(cudaEventRecord(ev[2 * i], st));
        f();
        CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], st));
      }
      CUDA_CHECK(cudaStreamSynchronize(st));
      std::vector<double> ms(o.iters);
      for (int i = 0; i < o.iters; i++) {
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
        ms[i] = t;
      }
      for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
      return stats_of(ms);
    };
    if (!o.json)
      std::printf("bench_lars on %s: ResNet-%d width %g encoder, %d tensors, %.2f M parameters (results identical)\n",
                  cuda_device_name(0).c_str(), o.depth, o.width, tensors, static_cast<double>(n) / 1e6);
    const Stats sf = time_it([&] { fused.step(lr); });
    const Stats ss = time_it(split_step);
    report(o, "fused", sf, n, tensors, 2);
    report(o, "per-tensor", ss, n, tensors, 2 * tensors);
    if (!o.json) std::printf("  speed-up fused / per-tensor: %.2fx\n", ss.median_ms / sf.median_ms);
#endif
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;  // every tool and benchmark: 1 for any error (docs/checkpoint.md, "Exit status")
  }
}
