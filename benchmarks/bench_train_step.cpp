// benchmarks/bench_train_step.cpp - one SimCLR training step (forward,
// NT-Xent, backward, LARS): train_step (train/step.h), the step `simclr
// train` runs, on random inputs, on the CPU, a GPU or the emulated device;
// prints views/s (wall clock) and the CPU seconds per step, then our time per
// op. benchmarks/cpu_step_compare.sh runs it against the same step in
// PyTorch (benchmarks/train_step_torch.py) and prints the ratio; on a GPU,
// benchmarks/gpu_suite.sh does (--device cuda on both sides).
//
//   bench_train_step [--depth 18] [--width 0.25] [--stem cifar] [--channels 1] [--size 28]
//                    [--views 512] [--threads 2] [--steps 10] [--warmup 2] [--json] [--no-profile]
//                    [--device cpu|cuda|emu] [--conv-impl cudnn|ours] [--precision fp32|tf32|bf16]
//                    [--cuda-graph]
// On a GPU the timed steps are bracketed by device synchronisations (the
// per-op table then shows host-side issue times, not kernel times).
//
// Defaults: the quickstart model (ResNet-18, CIFAR stem, width 0.25, 1 input
// channel, 28x28, official 2-layer head, tau 0.5, LARS), 512 views per step.
// CPU seconds (process CPU time / step) are the load-robust number on a busy
// machine with --threads 1; wall clock is what a user sees.
// --json prints one JSON line instead of the table (for the compare script).
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "engine/device.h"
#include "engine/profile.h"
#include "kernels/conv2d.h"
#include "models/init.h"
#include "optim/lars.h"
#include "tools/cli/process_env.h"
#include "train/step.h"
#include "train/trainer.h"

using namespace simclr;

namespace {

const char* kUsage =
    "usage: bench_train_step [options]\n"
    "  --depth D      ResNet depth 18|34|50|101|152   (18)\n"
    "  --width W      width multiplier                (0.25)\n"
    "  --stem S       cifar|imagenet                  (cifar)\n"
    "  --channels C   input channels 1|3              (1)\n"
    "  --size S       image side                      (28)\n"
    "  --views V      views per step (2 x batch)      (512)\n"
    "  --threads T    OpenMP/OpenBLAS/oneDNN threads  (2)\n"
    "  --steps K      timed steps                     (10)\n"
    "  --warmup K     untimed steps first             (2)\n"
    "  --device D     cpu|cuda|cuda:K|emu             (cpu)\n"
    "  --conv-impl I  cudnn|ours (CUDA convolutions)  (cudnn)\n"
    "  --precision P  fp32|tf32|bf16 (tf32: CUDA; bf16: CUDA, or the CPU with oneDNN bf16 kernels) (fp32)\n"
    "  --cuda-graph   capture the step after warm-up, replay it (cuda|emu)\n"
    "  --json         one JSON line instead of the table\n"
    "  --no-profile   skip the per-op table (its timers cost a little)\n";

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

long page_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt + u.ru_majflt;
}

}  // namespace

int main(int argc, char** argv) {
  int depth = 18, channels = 1, size = 28, views = 512, threads = 2, steps = 10, warmup = 2;
  double width = 0.25;
  std::string stem = "cifar", device_name = "cpu", conv_impl = "cudnn", precision = "fp32";
  bool graph = false;
  bool json = false, profile = true;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n%s", a.c_str(), kUsage);
        std::exit(1);
      }
      return argv[++i];
    };
    if (a == "--depth") depth = std::atoi(next());
    else if (a == "--width") width = std::atof(next());
    else if (a == "--stem") stem = next();
    else if (a == "--channels") channels = std::atoi(next());
    else if (a == "--size") size = std::atoi(next());
    else if (a == "--views") views = std::atoi(next());
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--steps") steps = std::atoi(next());
    else if (a == "--warmup") warmup = std::atoi(next());
    else if (a == "--device") device_name = next();
    else if (a == "--conv-impl") conv_impl = next();
    else if (a == "--precision") precision = next();
    else if (a == "--json") json = true;
    else if (a == "--no-profile") profile = false;
    else if (a == "--cuda-graph") graph = true;
    else {
      std::fprintf(a == "--help" ? stdout : stderr, "%s%s", a == "--help" ? "" : ("error: unknown option " + a + "\n").c_str(),
                   kUsage);
      return a == "--help" ? 0 : 1;
    }
  }
  if (views < 4 || views % 2 || steps < 1 || warmup < 0 || size < 4 || threads < 1) {
    std::fprintf(stderr, "error: need an even --views >= 4, --steps >= 1, --warmup >= 0, --size >= 4, --threads >= 1\n");
    return 1;
  }
  tune_process_environment(argv);  // as simclr does (tools/cli/process_env.h; may re-execute once)
  try {
    set_compute_threads(threads);
    tune_host_allocator();
    std::string note;
    const Device device = resolve_device(device_name, &note);
    if (!note.empty() && !json) std::printf("note: %s\n", note.c_str());
    SIMCLR_CHECK(conv_impl == "cudnn" || conv_impl == "ours", "--conv-impl must be cudnn or ours, not '", conv_impl,
                 "'");
    if (device.is_cuda()) set_cuda_conv_impl(conv_impl == "ours" ? ConvImpl::ours : ConvImpl::cudnn);
    SIMCLR_CHECK(precision == "fp32" || precision == "tf32" || precision == "bf16",
                 "--precision must be fp32, tf32 or bf16, not '", precision, "'");
    if (device.is_cuda()) set_cuda_math(precision == "tf32" ? CudaMath::tf32 : CudaMath::fp32);
    SIMCLR_CHECK(!graph || device.runs_cuda_code(), "--cuda-graph needs --device cuda or emu");
    SIMCLR_CHECK(!graph || warmup >= 2, "--cuda-graph needs --warmup >= 2 (eager steps, then the capture)");
    auto sync = [&] {
      if (device.is_cuda()) cuda_synchronize(device.index);
    };
    ResNetConfig rc;
    rc.depth = depth;
    rc.width = width;
    rc.in_channels = channels;
    rc.stem = stem;
    HeadConfig hc;
    SimclrModel m(rc, &hc);
    m.init(0);
    m.to(device);
    m.compute_dtype = precision == "bf16" ? DType::bf16 : DType::f32;
    Lars opt(LarsConfig{}, m.store);
    Tensor xh = Tensor::empty({views, size, size, channels}, DType::f32);
    init_normal(xh, 1.0, 1, 2);
    const Tensor x = xh.to(device);
    double loss = 0;
    StepResult last;
    // --cuda-graph: the warm-up's eager steps, then the capture, then replays (train/step.h)
    std::unique_ptr<CapturedStep> captured;
    if (graph) captured = std::make_unique<CapturedStep>(m, opt, 0.5, nullptr, warmup - 1);
    auto step = [&]() { last = captured ? captured->run(x, 0.1) : train_step(x, m, opt, 0.1, 0.5); };
    for (int s = 0; s < warmup; s++) step();
    sync();
    profile_reset();
    profile_enable(profile);
    const long f0 = page_faults();
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; s++) step();
    sync();
    loss = wait_result(last, opt).loss;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
    const double cpu = (cpu_seconds() - c0) / steps;
    const double faults = static_cast<double>(page_faults() - f0) / steps;
    profile_enable(false);
    const std::string conv = device.is_cpu()   ? (cpu::conv2d_fast_available() ? "oneDNN" : "im2col reference")
                             : device.is_emu() ? "ours (emulated)"
                                               : conv_impl;
    if (json) {
      std::printf("{\"impl\": \"simclr %s\", \"depth\": %d, \"width\": %g, \"views\": %d, \"size\": %d, \"threads\": %d, "
                  "\"steps\": %d, \"step_ms\": %.3f, \"views_per_s\": %.3f, \"cpu_s_per_step\": %.4f, \"loss\": %.6f, "
                  "\"conv\": \"%s\", \"device\": \"%s\", \"precision\": \"%s\", \"cuda_graph\": %s}\n",
                  SIMCLR_GIT_COMMIT, depth, width, views, size, threads, steps, 1000 * dt, views / dt, cpu, loss,
                  conv.c_str(), device.str().c_str(), precision.c_str(), graph ? "true" : "false");
      return 0;
    }
    std::printf("machine: %d cores; BLAS: %s; conv: %s; commit %s\n", static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)),
                blas_info().c_str(), conv.c_str(), SIMCLR_GIT_COMMIT);
    std::printf("ResNet-%d width %g, %s stem, %dx%dx%d, %d views/step, %d threads, %d timed steps, device %s, %s%s\n",
                depth, width, stem.c_str(), size, size, channels, views, threads, steps, device.str().c_str(),
                precision.c_str(), graph ? ", CUDA graph" : "");
    std::printf("simclr: %8.1f ms/step  %8.1f views/s  %6.3f CPU-s/step  %.0f page faults/step  (loss %.4f)\n",
                1000 * dt, views / dt, cpu, faults, loss);
    if (profile) {
      std::printf("time per step by op (ms; forward ops and step phases, then <op>.backward):\n");
      for (const ProfileEntry& e : profile_snapshot())
        if (e.name != "backward (total)") std::printf("  %-26s %8.2f\n", e.name.c_str(), 1000 * e.seconds / steps);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
