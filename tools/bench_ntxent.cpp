// tools/bench_ntxent.cpp - time the fused NT-Xent kernels against the unfused
// cuBLAS baseline in the same run, check them against the CPU reference, and
// compute the loss/gradient of embeddings from a .npy file.
//
// In the llm.c dev/cuda manner: every implementation is validated (finite,
// and fused vs unfused agree; --check: both against the float64 CPU
// reference) before its times are printed. Times come from CUDA events
// around each call (median and p90 over --iters after --warmup). Reported:
//   TFLOP/s  the similarity products the maths needs: forward 2·V²·D,
//            backward 4·V²·D (S recomputed + G·ẑ for fused; dS·ẑ + dSᵀ·ẑ for
//            the baseline), fwd+bwd 6·V²·D; the same count for both, so the
//            ratio of TFLOP/s is the speed-up.
//   Gexp/s   V² exponentials per pass.
//   extra    peak device memory above the inputs/outputs (workspace, lse).
//   bound    how close fused fwd+bwd gets to max(FLOPs / tensor peak, exps /
//            MUFU peak) at the device's boost clock (dense bf16 tensor peak:
//            2048 FLOP/clk/SM on sm_80, 4096 on sm_90 (wgmma; our mma.sync
//            kernels cannot reach all of it); ex2: 16/clk/SM).
// Without a GPU (or with --device cpu) the CPU paths are timed instead: the
// float64-accumulating reference (kernels/cpu/ntxent.cpp) and the fast tiled
// fp32 path (kernels/cpu/ntxent_fast.cpp, what the f32 op runs from 2N = 512),
// both checked against each other, beside PyTorch's textbook version on the
// CPU in the same run (benchmarks/ntxent_torch.py --device cpu, same thread
// count), with the ratios; extra = the bytes each path allocates (torch: its
// peak RSS growth).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <omp.h>
#include <unistd.h>

#include "engine/autograd.h"
#include "engine/check.h"
#include "engine/device.h"
#include "engine/fileio.h"
#include "train/npy.h"
#include "losses/losses.h"
#include "engine/tensor.h"
#include "kernels/cpu/ntxent_fast.h"
#include "kernels/ntxent.h"

#ifdef SIMCLR_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#endif

using namespace simclr;

namespace {

const char* kUsage = R"(usage: bench_ntxent [flags]
Times the fused NT-Xent kernels (kernels/cuda/ntxent.cu) and the unfused
cuBLAS baseline in the same run; without a GPU (or --device cpu), times the
CPU reference, the fast CPU path and PyTorch's CPU textbook version.

  --n V              views 2N (rows of z)                      default 8192 (CPU: 1024)
  --d D              feature dimension                          default 128
  --dtype bf16|fp32  embedding dtype on the GPU                 default bf16 (with --z: fp32)
  --tau T            temperature                                default 0.1
  --warmup W         untimed iterations                         default 10 (CPU: 1)
  --iters I          timed iterations                           default 50 (CPU: 3)
  --backward         time forward, backward and both            (default)
  --no-backward      time the forward only
  --ksplit K         key split of the fused kernels, 0 = auto   default 0
  --no-unfused       skip the unfused baseline
  --check            compare loss and gradient with the float64 CPU reference at this
                     size (prints max relative errors; exit 1 if over tolerance)
  --sweep            table over 2N = 512, 1024, ..., 131072 at --d/--dtype
  --json             also print one JSON line per measurement
  --z FILE.npy       embeddings [2N, D] (f32 or f64): print the loss (and with
                     --grad-out write dL/dz, same dtype as the file)
  --grad-out FILE    see --z
  --device cpu|cuda  device to time (and for --z)                default cuda if available
  --threads T        CPU threads (OpenMP; torch.set_num_threads)  default OMP_NUM_THREADS / cores
  --no-reference     CPU: skip timing the reference (slow at large 2N)
  --torch PYTHON     CPU: python with torch for benchmarks/ntxent_torch.py
                     ('none' skips it)                          default /usr/bin/python3
  -h, --help         this text
)";

struct Options {
  int64_t n = -1, d = 128;
  std::string dtype = "bf16";
  bool dtype_set = false;
  double tau = 0.1;
  int warmup = -1, iters = -1, ksplit = 0;
  bool backward = true, json = false, check = false, sweep = false, unfused = true, reference = true;
  int threads = 0;
  std::string z_path, grad_out, device, torch_python = "/usr/bin/python3";
};

Options parse(int argc, char** argv) {
  Options o;
  auto value = [&](int& i, const std::string& flag) -> std::string {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    if (eq != std::string::npos) return a.substr(eq + 1);
    SIMCLR_CHECK(i + 1 < argc, "flag ", flag, " needs a value (see --help)");
    return argv[++i];
  };
  auto to_int = [](const std::string& flag, const std::string& v) -> int64_t {
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    SIMCLR_CHECK(!v.empty() && end && *end == '\0', "flag ", flag, ": '", v, "' is not an integer");
    return x;
  };
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    const std::string flag = a.substr(0, a.find('='));
    if (flag == "-h" || flag == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (flag == "--n") {
      o.n = to_int(flag, value(i, flag));
    } else if (flag == "--d") {
      o.d = to_int(flag, value(i, flag));
    } else if (flag == "--dtype") {
      o.dtype = value(i, flag);
      o.dtype_set = true;
      SIMCLR_CHECK(o.dtype == "bf16" || o.dtype == "fp32", "--dtype must be bf16 or fp32, got '", o.dtype, "'");
    } else if (flag == "--tau") {
      const std::string v = value(i, flag);
      char* end = nullptr;
      o.tau = std::strtod(v.c_str(), &end);
      SIMCLR_CHECK(!v.empty() && *end == '\0' && o.tau > 0, "--tau must be a positive number, got '", v, "'");
    } else if (flag == "--warmup") {
      o.warmup = static_cast<int>(to_int(flag, value(i, flag)));
      SIMCLR_CHECK(o.warmup >= 0, "--warmup must be >= 0, got ", o.warmup);  // (-1 is only the "default" mark)
    } else if (flag == "--iters") {
      o.iters = static_cast<int>(to_int(flag, value(i, flag)));
      SIMCLR_CHECK(o.iters >= 1, "--iters must be >= 1, got ", o.iters);
    } else if (flag == "--ksplit") {
      o.ksplit = static_cast<int>(to_int(flag, value(i, flag)));
    } else if (flag == "--backward") {
      o.backward = true;
    } else if (flag == "--no-backward") {
      o.backward = false;
    } else if (flag == "--no-unfused") {
      o.unfused = false;
    } else if (flag == "--no-reference") {
      o.reference = false;
    } else if (flag == "--threads") {
      o.threads = static_cast<int>(to_int(flag, value(i, flag)));
      SIMCLR_CHECK(o.threads >= 1, "--threads must be >= 1, got ", o.threads);
    } else if (flag == "--torch") {
      o.torch_python = value(i, flag);
    } else if (flag == "--check") {
      o.check = true;
    } else if (flag == "--sweep") {
      o.sweep = true;
    } else if (flag == "--json") {
      o.json = true;
    } else if (flag == "--z") {
      o.z_path = value(i, flag);
    } else if (flag == "--grad-out") {
      o.grad_out = value(i, flag);
    } else if (flag == "--device") {
      o.device = value(i, flag);
      SIMCLR_CHECK(o.device == "cpu" || o.device == "cuda", "--device must be cpu or cuda, got '", o.device, "'");
    } else {
      fail("unknown flag '", a, "' (see --help)");
    }
  }
  SIMCLR_CHECK(o.n == -1 || (o.n >= 2 && o.n % 2 == 0), "--n (views, 2N) must be even and >= 2, got ", o.n);
  SIMCLR_CHECK(o.d >= 1, "--d must be >= 1, got ", o.d);
  SIMCLR_CHECK(o.warmup == -1 || o.warmup >= 0, "--warmup must be >= 0");
  SIMCLR_CHECK(o.iters == -1 || o.iters >= 1, "--iters must be >= 1");
  SIMCLR_CHECK(o.ksplit >= 0, "--ksplit must be >= 0");
  SIMCLR_CHECK(o.grad_out.empty() || !o.z_path.empty(), "--grad-out needs --z");
  if (!o.grad_out.empty()) check_output_path("--grad-out", o.grad_out, {o.z_path}, /*replace_existing=*/true);
  return o;
}

// Embeddings like a projection head's output: Gaussian rows, every positive
// pair correlated (so the softmax is peaked, as in training).
std::vector<float> make_embeddings(int64_t V, int64_t D, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> z(static_cast<size_t>(V * D));
  for (auto& x : z) x = nd(rng);
  for (int64_t i = 0; i < V / 2; i++)
    for (int64_t k = 0; k < D; k++) z[(i + V / 2) * D + k] = z[i * D + k] + 0.5f * nd(rng);
  return z;
}

struct Stats {
  double median = 0, p90 = 0;
};
Stats stats_of(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Stats s;
  s.median = ms[ms.size() / 2];
  s.p90 = ms[std::min(ms.size() - 1, static_cast<size_t>(std::ceil(0.9 * static_cast<double>(ms.size()))) - 1)];
  return s;
}

struct Measure {
  std::string impl, pass;
  Stats t;              // ms
  double flops = 0, exps = 0;
  double extra_bytes = -1;  // < 0: not measured
};

double pass_flops(const std::string& pass, int64_t V, int64_t D) {
  const double s = static_cast<double>(V) * static_cast<double>(V) * static_cast<double>(D);
  return pass == "fwd" ? 2 * s : pass == "bwd" ? 4 * s : 6 * s;
}
double pass_exps(const std::string& pass, int64_t V) {
  const double s = static_cast<double>(V) * static_cast<double>(V);
  return pass == "fwd+bwd" ? 2 * s : s;
}

void print_json(const Measure& m, int64_t V, int64_t D, const std::string& dtype, double tau, const std::string& dev) {
  std::printf(
      "{\"bench\":\"ntxent\",\"impl\":\"%s\",\"pass\":\"%s\",\"n\":%lld,\"d\":%lld,\"dtype\":\"%s\",\"tau\":%g,"
      "\"device\":\"%s\",\"median_ms\":%.6f,\"p90_ms\":%.6f,\"tflops\":%.4f,\"gexp_s\":%.3f,\"extra_bytes\":%.0f,"
      "\"commit\":\"%s\"}\n",
      m.impl.c_str(), m.pass.c_str(), static_cast<long long>(V), static_cast<long long>(D), dtype.c_str(), tau,
      dev.c_str(), m.t.median, m.t.p90, m.flops / (m.t.median * 1e-3) / 1e12, m.exps / (m.t.median * 1e-3) / 1e9,
      m.extra_bytes, SIMCLR_GIT_COMMIT);
}

void print_table(const std::vector<Measure>& ms) {
  std::printf("  %-8s %-8s %10s %10s %9s %9s %11s\n", "pass", "impl", "median ms", "p90 ms", "TFLOP/s", "Gexp/s",
              "extra MiB");
  for (const Measure& m : ms) {
    char extra[32] = "-";
    if (m.extra_bytes >= 0) std::snprintf(extra, sizeof extra, "%.1f", m.extra_bytes / (1 << 20));
    std::printf("  %-8s %-8s %10.4f %10.4f %9.4g %9.4g %11s\n", m.pass.c_str(), m.impl.c_str(), m.t.median, m.t.p90,
                m.flops / (m.t.median * 1e-3) / 1e12, m.exps / (m.t.median * 1e-3) / 1e9, extra);
  }
}

// max_i |a_i - b_i| / max_i |b_i|; the absolute error max_i |a_i| when b is all
// zero (--n 2: one positive pair and no negatives, so the loss and its gradient
// are exactly 0 and a relative error is undefined)
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double e = 0, m = 0;
  for (size_t i = 0; i < a.size(); i++) {
    e = std::max(e, std::abs(a[i] - b[i]));
    m = std::max(m, std::abs(b[i]));
  }
  return m > 0 ? e / m : e;
}

// float64 reference loss and gradient (dloss = 1) of z (values as given).
void reference(double& loss, std::vector<double>& grad, const std::vector<double>& z, int64_t V, int64_t D, double tau) {
  std::vector<double> rows(V), lse(V);
  cpu::ntxent_forward(rows.data(), lse.data(), z.data(), V, D, tau, 0, V);
  loss = 0;
  for (double r : rows) loss += r;
  loss /= static_cast<double>(V);
  grad.assign(static_cast<size_t>(V * D), 0.0);
  cpu::ntxent_backward(grad.data(), z.data(), lse.data(), 1.0, V, D, tau, 0, V);
}

// ------------------------------------------------------------------ --z FILE.npy
int run_npy(const Options& o) {
  Tensor z = read_npy(o.z_path);
  SIMCLR_CHECK(z.dtype() == DType::f32 || z.dtype() == DType::f64, "'", o.z_path, "': embeddings must be f32 or f64, got ",
               dtype_name(z.dtype()));
  SIMCLR_CHECK(z.ndim() == 2, "'", o.z_path, "': embeddings must be 2-D [2N, D], got shape ", z.shape().str());
  for (int64_t i = 0; i < z.numel(); i++) {  // a NaN in, a NaN loss out, exit 0: refused instead
    const double v = z.dtype() == DType::f32 ? static_cast<double>(z.data<float>()[i]) : z.data<double>()[i];
    SIMCLR_CHECK(std::isfinite(v), "'", o.z_path, "': embeddings hold a non-finite value (", v, ") at row ",
                 i / z.size(1), ", column ", i % z.size(1));
  }
  std::string dev = o.device;
  if (dev.empty()) dev = cuda_available() ? "cuda" : "cpu";
  if (dev == "cuda")
    SIMCLR_CHECK(cuda_available(), "--device cuda: ", cuda_unavailable_reason());
  const bool bf = o.dtype_set && o.dtype == "bf16";  // --z checks numbers: fp32 unless asked
  Tensor x = dev == "cpu" ? z.clone() : z.to(bf ? DType::bf16 : DType::f32).to(Device::cuda(0));
  x.set_requires_grad();
  Tensor loss = ntxent(x, o.tau);
  backward(loss);
  const double l = loss.item();
  std::printf("loss %.17g\n", l);
  std::printf("embeddings %s, 2N=%lld d=%lld tau=%g, computed on %s as %s\n", o.z_path.c_str(),
              static_cast<long long>(z.size(0)), static_cast<long long>(z.size(1)), o.tau, dev.c_str(),
              dtype_name(x.dtype()));
  if (o.json)
    std::printf("{\"bench\":\"ntxent\",\"z\":\"%s\",\"loss\":%.17g,\"device\":\"%s\",\"dtype\":\"%s\"}\n",
                o.z_path.c_str(), l, dev.c_str(), dtype_name(x.dtype()));
  if (!o.grad_out.empty()) {
    Tensor g = x.grad().to(Device::cpu()).to(z.dtype());
    write_npy(o.grad_out, g);
    std::printf("gradient written to %s\n", o.grad_out.c_str());
  }
  return 0;
}

// ------------------------------------------------------------------ CPU
// benchmarks/ntxent_torch.py: beside the build tree of this executable, else from the working directory.
std::string torch_script() {
  std::vector<std::string> where;
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    const std::string exe(buf, static_cast<size_t>(n));
    where.push_back(exe.substr(0, exe.rfind('/')) + "/../benchmarks/ntxent_torch.py");
  }
  where.push_back("benchmarks/ntxent_torch.py");
  for (const std::string& w : where)
    if (std::FILE* f = std::fopen(w.c_str(), "r")) {
      std::fclose(f);
      return w;
    }
  return "";
}

// The value of "key": in a JSON line (number or null -> NaN; a string into *str).
double json_number(const std::string& line, const std::string& key, std::string* str = nullptr) {
  const size_t k = line.find("\"" + key + "\":");
  if (k == std::string::npos) return NAN;
  size_t v = k + key.size() + 3;
  while (v < line.size() && line[v] == ' ') v++;
  if (str && v < line.size() && line[v] == '"') {
    *str = line.substr(v + 1, line.find('"', v + 1) - v - 1);
    return 0;
  }
  if (line.compare(v, 4, "null") == 0) return NAN;
  return std::strtod(line.c_str() + v, nullptr);
}

// PyTorch's textbook NT-Xent on the CPU (fp32, eager) in a child process, same size and threads.
std::vector<Measure> run_torch_cpu(const Options& o, int64_t V, int64_t D, int threads, std::string& note) {
  std::vector<Measure> out;
  if (o.torch_python == "none") return out;
  const std::string script = torch_script();
  if (script.empty()) {
    note = "benchmarks/ntxent_torch.py not found";
    return out;
  }
  char cmd[8192];
  std::snprintf(cmd, sizeof cmd,
                "'%s' '%s' --device cpu --dtype fp32 --modes eager --json --n %lld --d %lld --tau %.17g "
                "--threads %d --warmup %d --iters %d 2>&1",
                o.torch_python.c_str(), script.c_str(), static_cast<long long>(V), static_cast<long long>(D), o.tau,
                threads, o.warmup, o.iters);
  std::FILE* p = popen(cmd, "r");
  if (!p) {
    note = "could not start " + o.torch_python;
    return out;
  }
  std::string line, last;
  char chunk[4096];
  while (std::fgets(chunk, sizeof chunk, p)) {
    line += chunk;
    if (line.back() != '\n') continue;
    if (line.rfind("{\"bench\"", 0) == 0) {
      std::string pass, msg;
      json_number(line, "pass", &pass);
      const double med = json_number(line, "median_ms"), p90 = json_number(line, "p90_ms");
      json_number(line, "note", &msg);
      if (std::isfinite(med))
        out.push_back({"torch", pass, {med, p90}, pass_flops(pass, V, D), pass_exps(pass, V),
                       json_number(line, "extra_bytes")});
      else
        note = "torch " + pass + ": " + msg;
    } else if (line != "\n") {
      last = line.substr(0, line.size() - 1);
    }
    line.clear();
  }
  const int rc = pclose(p);
  if (out.empty() && note.empty())
    note = "no timing from " + o.torch_python + " (exit status " + std::to_string(rc) + "): " + last;
  return out;
}

int run_cpu(Options o, bool no_gpu) {
  if (no_gpu)
    std::printf("notice: %s: timing the CPU paths instead of the CUDA kernels\n",
                cuda_unavailable_reason().empty() ? "no CUDA device" : cuda_unavailable_reason().c_str());
  if (o.n < 0) o.n = 1024;
  if (o.warmup < 0) o.warmup = 1;
  if (o.iters < 0) o.iters = 3;
  SIMCLR_CHECK(!o.sweep, "--sweep needs a GPU (the CPU reference is O(V²·D) in double)");
  if (o.threads > 0) omp_set_num_threads(o.threads);
  const int threads = omp_get_max_threads();
  const int64_t V = o.n, D = o.d;
  const std::vector<float> zf = make_embeddings(V, D, 1);
  Tensor z = Tensor::from_vector(zf, {V, D});
  const bool fast = cpu::ntxent_fast_eligible(V, o.tau);
  std::printf("bench_ntxent (CPU, f32): 2N=%lld d=%lld tau=%g, %d threads, %s\n", static_cast<long long>(V),
              static_cast<long long>(D), o.tau, threads, blas_info().c_str());
  std::printf("  the f32 op runs the %s here (fast path: 2N >= %lld and tau >= %g; its exp2: %s)\n",
              fast ? "fast path" : "reference", static_cast<long long>(cpu::kNtxentFastMinRows), kNtxentMinTau,
              cpu::ntxent_fast_has_avx2() ? "AVX2+FMA" : "portable");
  std::vector<Measure> out;
  auto time = [&](const std::string& impl, const std::string& pass, double extra, const std::function<void()>& f) {
    for (int i = 0; i < o.warmup; i++) f();
    std::vector<double> ms;
    for (int i = 0; i < o.iters; i++) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    out.push_back({impl, pass, stats_of(ms), pass_flops(pass, V, D), pass_exps(pass, V), extra});
  };
  // the outputs of each path's last call, for the cross-check
  std::vector<float> ref_rows(V), ref_lse(V), ref_dz(V * D), fast_rows(V), fast_lse(V), fast_dz(V * D);
  // extra = the bytes each path allocates, + lse [V] and the row losses [V] (f32). The reference:
  // ẑ [V,D] and |z| [V] in double, one row of s [V] and g [D] per thread.
  const double ref_extra = 8.0 * (V * D + V + static_cast<double>(threads) * (V + D)) + 8.0 * V;
  const double fast_extra = static_cast<double>(cpu::ntxent_fast_extra_bytes(V, D, V)) + 8.0 * V;
  if (fast) {
    time("cpu-fast", "fwd", fast_extra,
         [&] { cpu::ntxent_fast_forward(fast_rows.data(), fast_lse.data(), zf.data(), V, D, o.tau, 0, V); });
    if (o.backward)
      time("cpu-fast", "fwd+bwd", fast_extra, [&] {
        cpu::ntxent_fast_forward(fast_rows.data(), fast_lse.data(), zf.data(), V, D, o.tau, 0, V);
        std::fill(fast_dz.begin(), fast_dz.end(), 0.0f);
        cpu::ntxent_fast_backward(fast_dz.data(), zf.data(), fast_lse.data(), 1.0, V, D, o.tau, 0, V);
      });
  }
  if (o.reference || !fast) {
    time("cpu-ref", "fwd", ref_extra,
         [&] { cpu::ntxent_forward(ref_rows.data(), ref_lse.data(), zf.data(), V, D, o.tau, 0, V); });
    if (o.backward)
      time("cpu-ref", "fwd+bwd", ref_extra, [&] {
        cpu::ntxent_forward(ref_rows.data(), ref_lse.data(), zf.data(), V, D, o.tau, 0, V);
        std::fill(ref_dz.begin(), ref_dz.end(), 0.0f);
        cpu::ntxent_backward(ref_dz.data(), zf.data(), ref_lse.data(), 1.0, V, D, o.tau, 0, V);
      });
  }
  std::string torch_note;
  const std::vector<Measure> tm = run_torch_cpu(o, V, D, threads, torch_note);
  out.insert(out.end(), tm.begin(), tm.end());
  print_table(out);
  if (!torch_note.empty()) std::printf("  torch: %s\n", torch_note.c_str());
  if (o.json)
    for (const Measure& m : out) print_json(m, V, D, "fp32", o.tau, "cpu");
  auto find = [&](const std::string& impl, const std::string& pass) -> const Measure* {
    for (const Measure& m : out)
      if (m.impl == impl && m.pass == pass) return &m;
    return nullptr;
  };
  for (const char* pass : {"fwd", "fwd+bwd"}) {
    const Measure* f = find("cpu-fast", pass);
    if (!f) continue;
    if (const Measure* t = find("torch", pass))
      std::printf("  speed-up %-8s fast vs torch (CPU, %d threads): %.2fx\n", pass, threads, t->t.median / f->t.median);
    if (const Measure* r = find("cpu-ref", pass))
      std::printf("  speed-up %-8s fast vs reference: %.2fx\n", pass, r->t.median / f->t.median);
  }
  bool ok = true;
  if (fast && o.reference) {  // the two paths on the same input (validated before trusted)
    double le = 0, lsum_r = 0, lsum_f = 0;
    for (int64_t i = 0; i < V; i++) {
      le = std::max(le, std::abs(static_cast<double>(fast_lse[i]) - ref_lse[i]));
      lsum_r += ref_rows[i];
      lsum_f += fast_rows[i];
    }
    const double loss_rel = std::abs(lsum_f - lsum_r) / std::max(std::abs(lsum_r), 1e-30);
    const double ge = o.backward ? rel_err(std::vector<double>(fast_dz.begin(), fast_dz.end()),
                                           std::vector<double>(ref_dz.begin(), ref_dz.end()))
                                 : 0.0;
    std::printf("  fast vs reference: loss rel err %.3g, lse max abs err %.3g, gradient rel err %.3g\n", loss_rel,
                le, ge);
    // ~10x the fp32 error bounds of tests/test_ntxent_fast.cpp at d <= 2048
    ok = le <= 1e-4 / o.tau && loss_rel <= 1e-4 && ge <= 1e-3;
    if (!ok) std::printf("  FAILED: the fast path disagrees with the reference\n");
  }
  if (o.check) {
    std::vector<double> z64(zf.begin(), zf.end()), g64;
    double l64 = 0;
    reference(l64, g64, z64, V, D, o.tau);
    Tensor x = z.clone().set_requires_grad();
    Tensor l = ntxent(x, o.tau);
    backward(l);
    std::vector<float> g32 = x.grad().to_floats();
    const bool zero = l64 == 0;  // 2N = 2: no negatives, loss and gradient exactly 0 (absolute errors)
    const double le = zero ? std::abs(l.item()) : std::abs(l.item() - l64) / std::abs(l64);
    const double ge = rel_err(std::vector<double>(g32.begin(), g32.end()), g64);
    std::printf("check (f32 op vs float64 reference): loss %s %.3g, gradient %s %.3g%s\n", zero ? "abs err" : "rel err",
                le, zero ? "abs err" : "rel err", ge,
                zero ? " (the reference loss is 0: one positive pair and no negatives, so absolute errors)" : "");
    if (le > 1e-5 || ge > 1e-4) {
      std::printf("CHECK FAILED\n");
      return 1;
    }
  }
  return ok ? 0 : 1;
}

#ifdef SIMCLR_WITH_CUDA
// ------------------------------------------------------------------ GPU
struct Device_info {
  std::string name;
  int sms = 0, major = 0, clock_khz = 0;
  double tensor_peak() const {  // dense bf16 FLOP/s
    return static_cast<double>(sms) * clock_khz * 1e3 * (major >= 9 ? 4096.0 : 2048.0);
  }
  double exp_peak() const { return static_cast<double>(sms) * clock_khz * 1e3 * 16.0; }
};

Device_info device_info() {
  Device_info d;
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  d.name = cuda_device_name(dev);
  CUDA_CHECK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&d.clock_khz, cudaDevAttrClockRate, dev));
  return d;
}

// Times f with CUDA events around each call on the engine stream.
Stats time_gpu(cudaStream_t st, int warmup, int iters, const std::function<void()>& f) {
  for (int i = 0; i < warmup; i++) f();
  std::vector<cudaEvent_t> ev(2 * iters);
  for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
  for (int i = 0; i < iters; i++) {
    CUDA_CHECK(cudaEventRecord(ev[2 * i], st));
    f();
    CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], st));
  }
  CUDA_CHECK(cudaStreamSynchronize(st));
  std::vector<double> ms(iters);
  for (int i = 0; i < iters; i++) {
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
    ms[i] = t;
  }
  for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
  return stats_of(ms);
}

// One configuration on the GPU: fused and (if it fits) unfused, validated
// against each other (and with --check against the CPU reference).
struct GpuRun {
  std::vector<Measure> ms;
  bool unfused_ran = false;
  std::string unfused_note;
  bool ok = true;
};

GpuRun run_gpu_config(const Options& o, int64_t V, int64_t D, bool verbose) {
  GpuRun run;
  const bool f32 = o.dtype == "fp32";
  const DType dt = f32 ? DType::f32 : DType::bf16;
  const Device dev = Device::cuda(0);
  cudaStream_t st = static_cast<cudaStream_t>(cuda_current_stream(0));
  const std::vector<float> zh = make_embeddings(V, D, 1);
  Tensor z = Tensor::from_vector(zh, {V, D}).to(dt).to(dev);
  Tensor dz = Tensor::zeros({V, D}, dt, dev);
  Tensor dloss = Tensor::full({1}, 1.0, DType::f32, dev);
  const int ks = gpu::ntxent_resolve_ksplit(o.ksplit, V, V);
  auto fwd_fused = [&](Tensor& loss, Tensor& lse, Tensor& ws) {
    if (f32)
      gpu::ntxent_forward(loss.ptr<float>(), lse.ptr<float>(), z.ptr<float>(), ws.data_ptr(), V, D, o.tau, 0, V, ks,
                          st);
    else
      gpu::ntxent_forward(loss.ptr<float>(), lse.ptr<float>(), z.ptr<bf16>(), ws.data_ptr(), V, D, o.tau, 0, V, ks,
                          st);
  };
  auto bwd_fused = [&](Tensor& lse, Tensor& ws) {
    if (f32)
      gpu::ntxent_backward(dz.ptr<float>(), z.ptr<float>(), lse.ptr<float>(), dloss.ptr<float>(), ws.data_ptr(), V,
                           D, o.tau, 0, V, ks, st);
    else
      gpu::ntxent_backward(dz.ptr<bf16>(), z.ptr<bf16>(), lse.ptr<float>(), dloss.ptr<float>(), ws.data_ptr(), V, D,
                           o.tau, 0, V, ks, st);
  };
  auto fwd_unfused = [&](Tensor& loss, Tensor& lse, Tensor& ws) {
    if (f32)
      gpu::ntxent_unfused_forward(loss.ptr<float>(), lse.ptr<float>(), z.ptr<float>(), ws.data_ptr(), V, D, o.tau, st);
    else
      gpu::ntxent_unfused_forward(loss.ptr<float>(), lse.ptr<float>(), z.ptr<bf16>(), ws.data_ptr(), V, D, o.tau, st);
  };
  auto bwd_unfused = [&](Tensor& lse, Tensor& ws) {
    if (f32)
      gpu::ntxent_unfused_backward(dz.ptr<float>(), z.ptr<float>(), lse.ptr<float>(), dloss.ptr<float>(),
                                   ws.data_ptr(), V, D, o.tau, st);
    else
      gpu::ntxent_unfused_backward(dz.ptr<bf16>(), z.ptr<bf16>(), lse.ptr<float>(), dloss.ptr<float>(),
                                   ws.data_ptr(), V, D, o.tau, st);
  };
  // loss and gradient (dloss = 1) of one implementation, for validation
  struct Out {
    double loss = NAN;
    std::vector<double> grad;
  };
  auto evaluate = [&](bool fused) {
    Out r;
    Tensor loss = Tensor::empty({1}, DType::f32, dev), lse = Tensor::empty({V}, DType::f32, dev);
    Tensor ws = Tensor::empty({static_cast<int64_t>(fused ? gpu::ntxent_workspace_bytes(V, D, V, f32, ks)
                                                          : gpu::ntxent_unfused_workspace_bytes(V, D, f32))},
                              DType::u8, dev);
    dz.zero_();
    if (fused) {
      fwd_fused(loss, lse, ws);
      bwd_fused(lse, ws);
    } else {
      fwd_unfused(loss, lse, ws);
      bwd_unfused(lse, ws);
    }
    cuda_synchronize(0);
    r.loss = loss.item();
    const std::vector<float> g = dz.to_floats();
    r.grad.assign(g.begin(), g.end());
    return r;
  };
  auto finite = [](const Out& r) {
    if (!std::isfinite(r.loss)) return false;
    for (double x : r.grad)
      if (!std::isfinite(x)) return false;
    return true;
  };

  // ---- which baseline fits
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const size_t unfused_bytes = gpu::ntxent_unfused_workspace_bytes(V, D, f32);
  bool do_unfused = o.unfused;
  if (do_unfused && unfused_bytes > free_b / 10 * 9) {
    do_unfused = false;
    char buf[160];
    std::snprintf(buf, sizeof buf, "unfused baseline skipped: needs %.1f GiB, %.1f GiB free", unfused_bytes / 1073741824.0,
                  free_b / 1073741824.0);
    run.unfused_note = buf;
  }

  // ---- validate before timing
  const Out fused = evaluate(true);
  if (!finite(fused)) {
    std::printf("  VALIDATION FAILED: fused loss/gradient not finite (loss %g)\n", fused.loss);
    run.ok = false;
  }
  if (do_unfused) {
    const Out unf = evaluate(false);
    const double le = std::abs(fused.loss - unf.loss) / std::max(std::abs(unf.loss), 1e-30);
    const double ge = rel_err(fused.grad, unf.grad);
    if (verbose) std::printf("  fused vs unfused: loss rel diff %.3g, gradient rel diff %.3g\n", le, ge);
    if (!finite(unf)) {
      std::printf("  VALIDATION FAILED: unfused loss/gradient not finite\n");
      run.ok = false;
    }
    // both carry bf16 rounding of ẑ (bf16) or ~1e-5 (fp32): a real disagreement is far larger
    const double tol_l = f32 ? 1e-3 : 5e-2, tol_g = f32 ? 1e-2 : 1e-1;
    if (le > tol_l || ge > tol_g) {
      std::printf("  VALIDATION FAILED: fused and unfused disagree (loss %.3g > %.0e or gradient %.3g > %.0e)\n", le,
                  tol_l, ge, tol_g);
      run.ok = false;
    }
  }
  if (o.check) {
    const std::vector<float> zr = z.to_floats();  // the values the GPU sees (rounded to the dtype)
    const std::vector<double> z64(zr.begin(), zr.end());
    double l64 = 0;
    std::vector<double> g64;
    reference(l64, g64, z64, V, D, o.tau);
    const double logit_tol = (f32 ? std::ldexp(1.0, -15) : std::ldexp(1.0, -8)) / o.tau + 1e-5;
    const double grad_tol = f32 ? 1e-4 : 3e-2;
    auto report = [&](const char* name, const Out& r) {
      const double la = std::abs(r.loss - l64), ge = rel_err(r.grad, g64);
      const bool pass = la <= 2 * logit_tol && ge <= grad_tol;
      char rel[48];  // a reference loss of 0 (e.g. --n 2: no negatives) has no relative error
      if (l64 != 0)
        std::snprintf(rel, sizeof rel, "%.3g", la / std::abs(l64));
      else
        std::snprintf(rel, sizeof rel, "n/a: the reference loss is 0");
      std::printf("  check %-8s vs float64 CPU reference: loss %.9g (ref %.9g, abs err %.3g, rel %s), gradient rel err %.3g: %s\n",
                  name, r.loss, l64, la, rel, ge, pass ? "ok" : "FAILED");
      if (!pass) run.ok = false;
    };
    report("fused", fused);
    if (do_unfused) report("unfused", evaluate(false));
  }

  // ---- time
  std::vector<std::string> passes = {"fwd"};
  if (o.backward) passes = {"fwd", "bwd", "fwd+bwd"};
  const int warmup = o.warmup < 0 ? 10 : o.warmup, iters = o.iters < 0 ? 50 : o.iters;
  for (int impl = 0; impl < (do_unfused ? 2 : 1); impl++) {
    const bool is_fused = impl == 0;
    for (const std::string& pass : passes) {
      cuda_synchronize(0);
      cuda_reset_peak(0);
      const size_t base = cuda_peak_bytes(0);
      Measure m;
      m.impl = is_fused ? "fused" : "unfused";
      m.pass = pass;
      m.flops = pass_flops(pass, V, D);
      m.exps = pass_exps(pass, V);
      {
        Tensor loss = Tensor::empty({1}, DType::f32, dev), lse = Tensor::empty({V}, DType::f32, dev);
        Tensor ws = Tensor::empty({static_cast<int64_t>(is_fused ? gpu::ntxent_workspace_bytes(V, D, V, f32, ks)
                                                                 : gpu::ntxent_unfused_workspace_bytes(V, D, f32))},
                                  DType::u8, dev);
        auto fwd = [&] { is_fused ? fwd_fused(loss, lse, ws) : fwd_unfused(loss, lse, ws); };
        auto bwd = [&] { is_fused ? bwd_fused(lse, ws) : bwd_unfused(lse, ws); };
        fwd();  // lse (and the baseline's S) for a backward-only timing
        if (pass == "fwd")
          m.t = time_gpu(st, warmup, iters, fwd);
        else if (pass == "bwd")
          m.t = time_gpu(st, warmup, iters, bwd);
        else
          m.t = time_gpu(st, warmup, iters, [&] {
            fwd();
            bwd();
          });
        cuda_synchronize(0);
        m.extra_bytes = static_cast<double>(cuda_peak_bytes(0) - base);
      }
      run.ms.push_back(m);
    }
    if (is_fused) run.unfused_ran = do_unfused;
  }
  return run;
}

int run_gpu(Options o) {
  const Device_info di = device_info();
  if (o.n < 0) o.n = 8192;
  const std::string devname = di.name;
  if (o.sweep) {
    std::printf("bench_ntxent sweep on %s (%d SMs, %d MHz), d=%lld %s tau=%g, fwd+bwd, commit %s\n", devname.c_str(),
                di.sms, di.clock_khz / 1000, static_cast<long long>(o.d), o.dtype.c_str(), o.tau, SIMCLR_GIT_COMMIT);
    std::printf("  %8s %12s %12s %8s %10s %12s %12s\n", "2N", "fused ms", "unfused ms", "speedup", "TFLOP/s",
                "fused MiB", "unfused MiB");
    Options so = o;
    so.backward = true;
    so.check = false;
    bool ok = true;
    for (int64_t V = 512; V <= 131072; V *= 2) {
      const GpuRun r = run_gpu_config(so, V, o.d, false);
      ok = ok && r.ok;
      const Measure* f = nullptr;
      const Measure* u = nullptr;
      for (const Measure& m : r.ms)
        if (m.pass == "fwd+bwd") (m.impl == "fused" ? f : u) = &m;
      char us[32] = "n/a", sp[32] = "-", um[32] = "-";
      if (u) {
        std::snprintf(us, sizeof us, "%.4f", u->t.median);
        std::snprintf(sp, sizeof sp, "%.2fx", u->t.median / f->t.median);
        std::snprintf(um, sizeof um, "%.1f", u->extra_bytes / (1 << 20));
      }
      std::printf("  %8lld %12.4f %12s %8s %10.2f %12.1f %12s%s%s\n", static_cast<long long>(V), f->t.median, us, sp,
                  f->flops / (f->t.median * 1e-3) / 1e12, f->extra_bytes / (1 << 20), um,
                  r.unfused_note.empty() ? "" : "  ", r.unfused_note.c_str());
      if (o.json)
        for (const Measure& m : r.ms) print_json(m, V, o.d, o.dtype, o.tau, devname);
      std::fflush(stdout);
    }
    return ok ? 0 : 1;
  }
  const int64_t V = o.n, D = o.d;
  std::printf("bench_ntxent: 2N=%lld d=%lld %s tau=%g on %s (%d SMs, %d MHz), ksplit %d, commit %s\n",
              static_cast<long long>(V), static_cast<long long>(D), o.dtype.c_str(), o.tau, devname.c_str(), di.sms,
              di.clock_khz / 1000, gpu::ntxent_resolve_ksplit(o.ksplit, V, V), SIMCLR_GIT_COMMIT);
  const GpuRun r = run_gpu_config(o, V, D, true);
  if (!r.unfused_note.empty()) std::printf("  %s\n", r.unfused_note.c_str());
  print_table(r.ms);
  if (o.json)
    for (const Measure& m : r.ms) print_json(m, V, D, o.dtype, o.tau, devname);
  // speed-ups and the hardware bound
  for (const Measure& f : r.ms) {
    if (f.impl != "fused") continue;
    for (const Measure& u : r.ms)
      if (u.impl == "unfused" && u.pass == f.pass)
        std::printf("  speed-up %-8s fused vs unfused: %.2fx\n", f.pass.c_str(), u.t.median / f.t.median);
    const double t_flop = f.flops / di.tensor_peak(), t_exp = f.exps / di.exp_peak();
    std::printf("  %-8s fused: %.0f%% of the hardware bound (tensor %.0f TFLOP/s -> %.4f ms, ex2 %.0f Gexp/s -> %.4f ms)\n",
                f.pass.c_str(), 100.0 * std::max(t_flop, t_exp) * 1e3 / f.t.median, di.tensor_peak() / 1e12,
                t_flop * 1e3, di.exp_peak() / 1e9, t_exp * 1e3);
  }
  if (o.dtype == "fp32")
    std::printf("  (fp32 runs each product as 3 bf16 tensor-core products, bf16x3: the bound above uses the nominal FLOPs)\n");
  if (!r.ok) std::printf("FAILED: see the validation lines above\n");
  return r.ok ? 0 : 1;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
    if (!o.z_path.empty()) return run_npy(o);
    if (o.device == "cpu") return run_cpu(o, false);
#ifdef SIMCLR_WITH_CUDA
    if (cuda_available()) return run_gpu(o);
#endif
    SIMCLR_CHECK(o.device != "cuda", "--device cuda: ", cuda_unavailable_reason());
    return run_cpu(o, true);
  } catch (const std::bad_alloc&) {  // e.g. --n 100000000: a message, never an abort
    if (o.n > 0)
      std::fprintf(stderr, "error: out of memory allocating the embeddings and their gradient for --n %lld --d %lld "
                           "(%.1f GB each in float32): lower --n or --d\n", static_cast<long long>(o.n),
                   static_cast<long long>(o.d), 4e-9 * static_cast<double>(o.n) * static_cast<double>(o.d));
    else
      std::fprintf(stderr, "error: out of memory allocating the embeddings of --z and their gradient\n");
    return 1;
  } catch (const std::exception& e) {  // exit 1 for any error, as the other tools
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
