// tests/test_conv_dnnl.cpp - the oneDNN convolution (kernels/cpu/conv2d_dnnl.cpp)
// against the float64 im2col reference (kernels/cpu/conv2d.cpp) on the shapes
// where oneDNN's own kernels go wrong (with 1 and 2 threads) and on a sweep of
// small odd shapes: forward (=), dx written (=) and accumulated (+=), dw
// accumulated (+=) and dw alone, every output between NaN guards and every
// call repeated.
//
// The defect (oneDNN 2.6, see the note at the top of conv2d_dnnl.cpp): the
// jit_1x1 backward-weights kernel of a strided 1x1 convolution without
// padding overruns its per-thread workspace when the nhwc input has fewer
// channels than the kernel's register block (8 on AVX2, 16 on AVX-512). With
// one thread it writes past the scratchpad (heap corruption: the e2e test
// aborted with "free(): invalid next size"); with two, threads overwrite each
// other's copy of x and dw is wrong by O(1) (the PyTorch fixture's
// layer2.0.downsample.0.weight, relative error 1.4). It depends on timing, so
// every call here runs several times; the overrun past the scratchpad is
// caught deterministically by the scratchpad canary of conv2d_dnnl.cpp.
// tests/test_cpu_fast.cpp did not see it: its one strided 1x1 case has C = 16.
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.h"
#include "kernels/conv2d.h"
#include "skip.h"

using namespace simclr;
using cpu::Conv2dShape;

namespace {

// f32 oneDNN against the f64 reference on the same f32 inputs: sums of at
// most a few thousand products (dw sums over N·Ho·Wo pixels) in f32 stay
// within ~1e-6 of the largest value; a wrong or missing term is O(1).
constexpr double kTol = 2e-5;
constexpr int64_t kEdge = 32;  // NaN guards on each side of every buffer

// A float buffer of n values with kEdge NaNs before and after.
class Fenced {
 public:
  static Fenced filled(int64_t n, float value) { return Fenced(n, [value](int64_t) { return value; }); }
  static Fenced random(int64_t n, uint64_t seed) {
    std::mt19937_64 g(seed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    return Fenced(n, [&](int64_t) { return u(g); });
  }
  float* data() { return buf_.data() + kEdge; }
  const float* data() const { return buf_.data() + kEdge; }
  int64_t size() const { return static_cast<int64_t>(buf_.size()) - 2 * kEdge; }
  std::vector<double> as_double() const { return std::vector<double>(data(), data() + size()); }
  bool fences_intact() const {
    for (int64_t i = 0; i < kEdge; i++)
      if (!std::isnan(buf_[static_cast<size_t>(i)]) || !std::isnan(buf_[buf_.size() - 1 - static_cast<size_t>(i)]))
        return false;
    return true;
  }
  // max_i |this_i - (want_i + offset)| / max_i |want_i + offset|
  double error_vs(const std::vector<double>& want, double offset = 0) const {
    double e = 0, m = 0;
    for (int64_t i = 0; i < size(); i++) {
      const double w = want[static_cast<size_t>(i)] + offset;
      e = std::max(e, std::abs(static_cast<double>(data()[i]) - w));
      m = std::max(m, std::abs(w));
    }
    return e / std::max(m, 1e-30);
  }

 private:
  template <class F>
  Fenced(int64_t n, F value) : buf_(static_cast<size_t>(n + 2 * kEdge), std::numeric_limits<float>::quiet_NaN()) {
    for (int64_t i = 0; i < n; i++) buf_[static_cast<size_t>(kEdge + i)] = value(i);
  }
  std::vector<float> buf_;
};

// omp_set_num_threads for one scope (the primitives are cached per thread count).
struct Threads {
  int before = omp_get_max_threads();
  explicit Threads(int n) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(before); }
};

std::string describe(const Conv2dShape& s) {
  std::ostringstream o;
  o << "x [" << s.N << "," << s.H << "," << s.W << "," << s.C << "] w [" << s.O << "," << s.kH << "," << s.kW << ","
    << s.C << "] stride " << s.stride << " pad " << s.pad << " threads " << omp_get_max_threads() << ": "
    << cpu::conv2d_fast_info(s);
  return o.str();
}

// Every entry point of the fast path against the reference, `reps` times.
void check_against_reference(const Conv2dShape& s, int reps) {
  INFO(describe(s));
  REQUIRE(cpu::conv2d_fast_supports(s));
  const int64_t nx = s.N * s.H * s.W * s.C, ny = s.N * s.Ho() * s.Wo() * s.O, nw = s.O * s.K();
  const Fenced x = Fenced::random(nx, 1), w = Fenced::random(nw, 2), dy = Fenced::random(ny, 3);
  const std::vector<double> xd = x.as_double(), wd = w.as_double(), dyd = dy.as_double();
  std::vector<double> y_ref(static_cast<size_t>(ny)), dx_ref(static_cast<size_t>(nx), 0.0),
      dw_ref(static_cast<size_t>(nw), 0.0);
  cpu::conv2d_forward(y_ref.data(), xd.data(), wd.data(), s);
  cpu::conv2d_backward(dx_ref.data(), dw_ref.data(), dyd.data(), xd.data(), wd.data(), s);
  for (int rep = 0; rep < reps; rep++) {
    INFO("repetition " << rep);
    Fenced y = Fenced::filled(ny, 3.f);  // stale values: forward writes
    cpu::conv2d_forward_fast(y.data(), x.data(), w.data(), s);
    CHECK(y.error_vs(y_ref) < kTol);
    CHECK(y.fences_intact());

    Fenced dx_set = Fenced::filled(nx, 7.f);  // written
    cpu::conv2d_backward_fast(dx_set.data(), false, nullptr, dy.data(), x.data(), w.data(), s);
    CHECK(dx_set.error_vs(dx_ref) < kTol);
    CHECK(dx_set.fences_intact());

    Fenced dx_acc = Fenced::filled(nx, 0.5f), dw_acc = Fenced::filled(nw, -0.25f);  // accumulated
    cpu::conv2d_backward_fast(dx_acc.data(), true, dw_acc.data(), dy.data(), x.data(), w.data(), s);
    CHECK(dx_acc.error_vs(dx_ref, 0.5) < kTol);
    CHECK(dw_acc.error_vs(dw_ref, -0.25) < kTol);
    CHECK(dx_acc.fences_intact());
    CHECK(dw_acc.fences_intact());

    Fenced dw_only = Fenced::filled(nw, 0.f);  // the stem: no dx wanted
    cpu::conv2d_backward_fast(nullptr, false, dw_only.data(), dy.data(), x.data(), w.data(), s);
    CHECK(dw_only.error_vs(dw_ref) < kTol);
    CHECK(dw_only.fences_intact());
  }
}

}  // namespace

TEST_CASE("conv2d oneDNN: strided 1x1 convolutions with few channels (ResNet downsample) match the reference",
          "[fast][conv2d][dnnl]") {
  if (!cpu::conv2d_fast_available()) SIMCLR_SKIP("no oneDNN in this build, or SIMCLR_CPU_CONV=reference");
  const std::vector<Conv2dShape> shapes = {
      // N  H   W   C   O  kH kW s  p
      {8, 8, 8, 4, 8, 1, 1, 2, 0},      // the PyTorch fixture (width 1/16, 8x8): layer2.0.downsample
      {8, 4, 4, 8, 16, 1, 1, 2, 0},     //   layer3.0.downsample (C < 16: AVX-512's block)
      {8, 2, 2, 16, 32, 1, 1, 2, 0},    //   layer4.0.downsample
      {8, 8, 8, 4, 8, 3, 3, 2, 1},      //   layer2.0.conv1 beside it
      {16, 28, 28, 4, 8, 1, 1, 2, 0},   // Fashion-MNIST at width 0.0625 (the e2e test)
      {16, 14, 14, 8, 16, 1, 1, 2, 0},  //   layer3
      {16, 7, 7, 16, 32, 1, 1, 2, 0},   //   layer4 (odd input)
      {8, 28, 28, 16, 32, 1, 1, 2, 0},  // the quickstart (width 0.25): layer2.0.downsample
      {1, 10, 6, 2, 11, 1, 1, 2, 0},    // batch 1
      {5, 10, 8, 3, 14, 1, 1, 2, 0},
      {3, 12, 6, 7, 9, 1, 1, 3, 0},     // stride 3
      {4, 9, 9, 5, 6, 1, 1, 3, 0},
      {2, 8, 12, 12, 16, 1, 1, 2, 0},   // 8 < C < 16
      {2, 6, 6, 15, 8, 1, 1, 2, 0},
      {4, 7, 9, 3, 8, 1, 1, 2, 0},      // odd sizes
      {2, 8, 8, 1, 4, 1, 1, 4, 0},      // C = 1, stride 4
  };
  for (int threads : {1, 2}) {
    Threads t(threads);
    for (const Conv2dShape& s : shapes) CHECK_NOTHROW(check_against_reference(s, 4));
  }
}

TEST_CASE("conv2d oneDNN: a sweep of small odd shapes matches the reference", "[fast][conv2d][dnnl]") {
  if (!cpu::conv2d_fast_available()) SIMCLR_SKIP("no oneDNN in this build, or SIMCLR_CPU_CONV=reference");
  // one thread: ctest runs two tests at once on 2 cores, where 2-thread OpenMP
  // regions crawl (13 s instead of 0.4 s); the races are the test above's
  Threads t(1);
  int i = 0, checked = 0;
  for (int64_t k : {1, 2, 3})
    for (int64_t stride : {1, 2, 3})
      for (int64_t pad : {0, 1})
        for (int64_t C : {1, 3, 4, 7, 9})
          for (int64_t O : {1, 8}) {
            // sizes cycle through odd and even values; kernels that do not fit are left out
            const int64_t N = 1 + i % 3, H = 3 + i % 5, W = 2 + (i * 3) % 7;
            i++;
            const Conv2dShape s{N, H, W, C, O, k, k, stride, pad};
            if (H + 2 * pad < k || W + 2 * pad < k) continue;
            CHECK_NOTHROW(check_against_reference(s, 2));
            checked++;
          }
  CHECK(checked > 150);
}
