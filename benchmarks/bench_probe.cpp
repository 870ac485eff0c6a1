// benchmarks/bench_probe.cpp - the linear probe's objective (softmax
// regression + gradient, train/eval.h): the fused, blocked form against the
// unfused reference (two whole-matrix sgemms) in the same run, with the ratio
// and the largest differences; a block-size sweep; and, with --probe, one
// full raw-pixel linear probe (probe_pixels on the quickstart's data config)
// with each form.
//
//   bench_probe [--n 54000] [--dims 784,128] [--classes 10] [--iters 5] [--probe]
//
// Reported: median milliseconds per call (objective + gradient), the ratio
// reference / fused, max |loss diff| and max |grad diff| / max |grad|.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "train/eval.h"
#include "train/run_config.h"

using namespace simclr;

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// median wall ms per call; *cpu_ms: the median process CPU ms per call (all
// threads; on a loaded machine the steadier of the two)
template <class F>
double median_ms(int iters, F&& f, double* cpu_ms = nullptr) {
  std::vector<double> ms, cms;
  f();  // warm-up
  for (int i = 0; i < iters; i++) {
    const double t0 = now_s(), c0 = cpu_s();
    f();
    ms.push_back(1e3 * (now_s() - t0));
    cms.push_back(1e3 * (cpu_s() - c0));
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cms.begin(), cms.end());
  if (cpu_ms) *cpu_ms = cms[cms.size() / 2];
  return ms[ms.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  int64_t n = 54000;
  std::vector<int64_t> dims = {784, 128};
  int K = 10, iters = 5;
  bool probe = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--n") n = std::stoll(next());
    else if (a == "--classes") K = std::stoi(next());
    else if (a == "--iters") iters = std::stoi(next());
    else if (a == "--probe") probe = true;
    else if (a == "--dims") {
      dims.clear();
      std::string s = next();
      for (size_t p = 0; p < s.size();) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        dims.push_back(std::stoll(s.substr(p, q - p)));
        p = q + 1;
      }
    } else {
      std::fprintf(stderr, "usage: bench_probe [--n N] [--dims D1,D2] [--classes K] [--iters I] [--probe]\n");
      return 2;
    }
  }
  std::printf("bench_probe: n=%lld K=%d, %d threads, median of %d calls (objective + gradient)\n",
              static_cast<long long>(n), K, omp_get_max_threads(), iters);
  for (int64_t D : dims) {
    std::vector<float> x(static_cast<size_t>(n * D));
    for (size_t i = 0; i < x.size(); i++)
      x[i] = static_cast<float>(static_cast<double>((i * 2654435761u) % 1000) / 500.0 - 1.0);
    std::vector<int64_t> y(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) y[i] = (i * 7) % K;
    std::vector<double> p(static_cast<size_t>(K * D + K));
    for (size_t i = 0; i < p.size(); i++) p[i] = 0.01 * std::sin(0.37 * static_cast<double>(i));
    std::vector<double> g_ref, g_new;
    double f_ref = 0, f_new = 0;
    double c_ref = 0, c_new = 0;
    const double t_ref = median_ms(
        iters, [&] { f_ref = softmax_regression_objective_reference(x.data(), y.data(), n, D, K, p, 1e-4, &g_ref); },
        &c_ref);
    const double t_new = median_ms(
        iters, [&] { f_new = softmax_regression_objective(x.data(), y.data(), n, D, K, p, 1e-4, &g_new); }, &c_new);
    double gmax = 0, gdiff = 0;
    for (size_t i = 0; i < g_ref.size(); i++) {
      gmax = std::max(gmax, std::abs(g_ref[i]));
      gdiff = std::max(gdiff, std::abs(g_ref[i] - g_new[i]));
    }
    std::printf("D=%-5lld wall: reference %8.1f ms  fused %8.1f ms  ratio %.2fx | cpu: %8.1f ms  %8.1f ms  ratio %.2fx"
                " | |dloss| %.1e  max|dg|/max|g| %.1e\n",
                static_cast<long long>(D), t_ref, t_new, t_ref / t_new, c_ref, c_new, c_ref / c_new,
                std::abs(f_ref - f_new), gdiff / gmax);
    std::printf("        block sweep (fused, 16 workers), wall / cpu ms:");
    for (int64_t blk : {32, 64, 128, 256, 512}) {
      double c = 0;
      const double t = median_ms(
          iters,
          [&] { softmax_regression_objective_blocked(x.data(), y.data(), n, D, K, p, 1e-4, &g_new, blk, 16); }, &c);
      std::printf("  %lld: %.0f / %.0f", static_cast<long long>(blk), t, c);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  if (probe) {
    RunConfig cfg = parse_run_config(quickstart_config());
    for (bool ref : {false, true}) {
      use_reference_softmax_objective(ref);
      const double t0 = now_s();
      ProbeReport r = probe_pixels(cfg);
      const double t = now_s() - t0;
      std::printf("raw-pixel linear probe (%s objective): top1 %.4f%% top5 %.4f%% train_top1 %.4f%% l2 %g, %d refit "
                  "iterations, probe %.1f s (wall %.1f s)\n",
                  ref ? "reference" : "fused", 100 * r.linear.top1, 100 * r.linear.top5, 100 * r.linear.train_top1,
                  r.linear.l2, r.linear.iterations, r.linear.seconds, t);
      std::printf("  held-out top-1 per l2:");
      for (auto& [l2, a] : r.linear.val_top1) std::printf("  %g: %.4f%%", l2, 100 * a);
      std::printf("\n");
      std::fflush(stdout);
    }
    use_reference_softmax_objective(false);
  }
  return 0;
}
