// benchmarks/bench_train_step.cpp - one SimCLR training step on the CPU
// (forward, NT-Xent, backward, LARS) against PyTorch on the same model, batch
// and thread count, run in the same process session: prints views/s for both
// and the ratio, then our time per op.
//   bench_train_step [--width 0.25] [--views 512] [--size 28] [--threads 2] [--steps 10] [--no-torch]
// Model: ResNet-18, CIFAR stem, 1 input channel, official head (depth 2),
// tau 0.5, LARS; random inputs. PyTorch side: benchmarks/train_step_torch.py
// through /usr/bin/python3 (Debian's python3-torch; skipped with a message
// when it is missing - `apt-get install python3-torch` provides it).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/ops.h"
#include "engine/profile.h"
#include "engine/trainer.h"
#include "models/init.h"
#include "optim/lars.h"

using namespace simclr;

int main(int argc, char** argv) {
  prefer_avx512_blas(argv);  // as tools/simclr: OpenBLAS's AVX-512 kernels where the CPU has them
  double width = 0.25;
  int views = 512, size = 28, threads = 2, steps = 10;
  bool torch = true;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(1);
      }
      return argv[++i];
    };
    if (a == "--width") width = std::atof(next());
    else if (a == "--views") views = std::atoi(next());
    else if (a == "--size") size = std::atoi(next());
    else if (a == "--threads") threads = std::atoi(next());
    else if (a == "--steps") steps = std::atoi(next());
    else if (a == "--no-torch") torch = false;
    else {
      std::fprintf(stderr,
                   "usage: bench_train_step [--width 0.25] [--views 512] [--size 28] [--threads 2] [--steps 10] "
                   "[--no-torch]\n");
      return a == "--help" ? 0 : 1;
    }
  }
  try {
    set_compute_threads(threads);
    tune_host_allocator();
    ResNetConfig rc;
    rc.depth = 18;
    rc.width = width;
    rc.in_channels = 1;
    rc.stem = "cifar";
    HeadConfig hc;
    SimclrModel m(rc, &hc);
    m.init(0);
    Lars opt(LarsConfig{}, m.store);
    Tensor x = Tensor::empty({views, size, size, 1}, DType::f32);
    init_normal(x, 1.0, 1, 2);
    auto step = [&]() {
      m.store.zero_grad();
      Tensor loss = ntxent(m.head->forward(m.encoder->forward(x, true), true), 0.5);
      backward(loss);
      opt.step(0.1);
      return loss.item();
    };
    step();
    step();
    profile_reset();
    profile_enable(true);
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; s++) step();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
    profile_enable(false);
    std::printf("machine: %d cores; BLAS: %s; commit %s\n", static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)), blas_info().c_str(),
                SIMCLR_GIT_COMMIT);
    std::printf("ResNet-18 width %g, CIFAR stem, %dx%dx1, %d views/step, %d threads, %d timed steps\n", width, size,
                size, views, threads, steps);
    const double ours = views / dt;
    std::printf("simclr   : %8.1f ms/step  %8.1f views/s\n", 1000 * dt, ours);
    if (torch) {
      char cmd[512];
      std::snprintf(cmd, sizeof cmd,
                    "/usr/bin/python3 %s/benchmarks/train_step_torch.py --width %g --views %d --size %d --threads %d "
                    "--steps %d 2>/dev/null",
                    SIMCLR_SOURCE_DIR, width, views, size, threads, steps);
      FILE* p = popen(cmd, "r");
      char line[1024] = {0};
      bool ok = p && std::fgets(line, sizeof line, p) != nullptr;
      if (p) pclose(p);
      const char* key = ok ? std::strstr(line, "\"views_per_s\": ") : nullptr;
      if (key) {
        double theirs = std::atof(key + 15);
        std::printf("pytorch  : %8.1f ms/step  %8.1f views/s\n", 1000 * views / theirs, theirs);
        std::printf("ratio simclr / pytorch: %.2fx\n", ours / theirs);
      } else {
        std::printf("pytorch  : not measured (/usr/bin/python3 with torch not available: apt-get install python3-torch)\n");
      }
    }
    std::printf("time per step by op (ms):\n");
    for (const ProfileEntry& e : profile_snapshot())
      if (e.name != "backward (total)")
        std::printf("  %-24s %8.2f\n", e.name.c_str(), 1000 * e.seconds / steps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
