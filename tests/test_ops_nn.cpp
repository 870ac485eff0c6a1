// tests/test_ops_nn.cpp - the special tests of conv2d, pooling, batch norm,
// l2_normalize and cross_entropy that are not rows of the op table
// (tests/op_table_cases.h runs forward against naive loops, float64
// gradients and f32 for every op): conv2d's backward against naive loops on
// shapes too large for finite differences (chunking, threads), max-pool ties,
// batch-norm statistics and running-statistics updates, global BN over two
// thread "ranks", cross-entropy closed forms, and the error paths.
#include <algorithm>
#include <barrier>
#include <cmath>
#include <exception>
#include <memory>
#include <random>
#include <thread>

#include "engine/comm.h"
#include "helpers.h"

using namespace simclr;
using simclr::test::grads_of;
using simclr::test::rand_tensor;
using simclr::test::rel_err;

namespace {

// --------------------------------------------------------------- naive references (double)

struct ConvCase {
  int64_t N, H, W, C, O, kH, kW;
  int stride, pad;
};

int64_t out_size(int64_t in, int64_t k, int s, int p) { return (in + 2 * p - k) / s + 1; }

// dx, dw of L = Σ y·dy by the definition (same loop, scattered).
void naive_conv_backward(Tensor& dx, Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w, int s, int p) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t O = w.size(0), kH = w.size(1), kW = w.size(2);
  const int64_t Ho = out_size(H, kH, s, p), Wo = out_size(W, kW, s, p);
  dx = Tensor::zeros(x.shape(), DType::f64);
  dw = Tensor::zeros(w.shape(), DType::f64);
  double* dxp = dx.data<double>();
  double* dwp = dw.data<double>();
  for (int64_t n = 0; n < N; n++)
    for (int64_t ho = 0; ho < Ho; ho++)
      for (int64_t wo = 0; wo < Wo; wo++)
        for (int64_t o = 0; o < O; o++) {
          const double g = dy.at(((n * Ho + ho) * Wo + wo) * O + o);
          for (int64_t kh = 0; kh < kH; kh++)
            for (int64_t kw = 0; kw < kW; kw++)
              for (int64_t c = 0; c < C; c++) {
                const int64_t ih = ho * s - p + kh, iw = wo * s - p + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const int64_t xi = ((n * H + ih) * W + iw) * C + c, wi = ((o * kH + kh) * kW + kw) * C + c;
                dxp[xi] += g * w.at(wi);
                dwp[wi] += g * x.at(xi);
              }
        }
}

// Per-channel mean and biased variance of x viewed as [M,C].
void channel_stats(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  mean.assign(C, 0.0);
  var.assign(C, 0.0);
  for (int64_t m = 0; m < M; m++)
    for (int64_t c = 0; c < C; c++) mean[c] += x.at(m * C + c) / static_cast<double>(M);
  for (int64_t m = 0; m < M; m++)
    for (int64_t c = 0; c < C; c++) var[c] += std::pow(x.at(m * C + c) - mean[c], 2) / static_cast<double>(M);
}


// --------------------------------------------------------------- a communicator over threads

// size "ranks" in one process, one std::thread each; all_reduce_sum and
// all_gather meet at a barrier. Every rank sums the slots in rank order, so
// all ranks get bit-identical results.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), bar_(size), slots_(static_cast<size_t>(size)) {}
  int size() const { return size_; }

  void all_reduce_sum(int rank, Tensor& t) {
    slots_[rank] = t;
    bar_.arrive_and_wait();
    std::vector<double> acc(static_cast<size_t>(t.numel()), 0.0);
    for (int r = 0; r < size_; r++)
      for (int64_t i = 0; i < t.numel(); i++) acc[i] += slots_[r].at(i);
    bar_.arrive_and_wait();  // everyone has read every slot
    Tensor sum = Tensor::from_vector(acc, t.shape());
    t.copy_from(sum);
  }

  void all_gather(int rank, Tensor& out, const Tensor& in) {
    slots_[rank] = in;
    bar_.arrive_and_wait();
    const int64_t rows = in.size(0);
    for (int r = 0; r < size_; r++) {
      Tensor part = out.slice0(r * rows, (r + 1) * rows);
      part.copy_from(slots_[r]);
    }
    bar_.arrive_and_wait();
  }

 private:
  int size_;
  std::barrier<> bar_;
  std::vector<Tensor> slots_;
};

class ThreadComm final : public Communicator {
 public:
  ThreadComm(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size(); }
  void all_reduce_sum(Tensor& t) override { g_.all_reduce_sum(rank_, t); }
  void all_gather(Tensor& out, const Tensor& in) override { g_.all_gather(rank_, out, in); }

 private:
  ThreadGroup& g_;
  int rank_;
};

}  // namespace

// ================================================================ conv2d

TEST_CASE("conv2d: backward matches naive loops on multi-chunk, multi-thread cases", "[ops][conv2d]") {
  // Too large for finite differences (and large enough to take the threaded path):
  // checks the chunking, the per-thread dw reduction, col2im and the direct 1x1 path.
  const std::vector<ConvCase> cases = {
      {5, 40, 40, 8, 4, 3, 3, 1, 1},   // 2 images per chunk: thread ranges of 2 and 3 images
      {6, 33, 31, 8, 6, 3, 3, 2, 1},   // stride 2, odd sizes
      {4, 30, 30, 16, 8, 1, 1, 1, 0},  // 1x1 direct
  };
  for (const ConvCase& c : cases) {
    for (DType dt : {DType::f64, DType::f32}) {
      INFO("N" << c.N << " H" << c.H << " W" << c.W << " C" << c.C << " O" << c.O << " k" << c.kH << "x" << c.kW
                << " s" << c.stride << " p" << c.pad << " " << dtype_name(dt));
      Tensor x = rand_tensor({c.N, c.H, c.W, c.C}, 1, -1, 1, dt).set_requires_grad();
      Tensor w = rand_tensor({c.O, c.kH, c.kW, c.C}, 2, -1, 1, dt).set_requires_grad();
      const int s = c.stride, p = c.pad;
      Tensor r = rand_tensor({c.N, out_size(c.H, c.kH, s, p), out_size(c.W, c.kW, s, p), c.O}, 3, -1, 1, dt);
      auto g = grads_of([s, p](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], s, p); }, {x, w}, r);
      Tensor dx, dw;
      naive_conv_backward(dx, dw, r.to(DType::f64), x.to(DType::f64), w.to(DType::f64), s, p);
      // f32: dw sums up to 8000 products per element
      const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
      CHECK(rel_err(g[0], dx) < tol);
      CHECK(rel_err(g[1], dw) < tol);
    }
  }
}

TEST_CASE("conv2d: error paths", "[ops][conv2d][errors]") {
  Tensor x = Tensor::zeros({2, 5, 5, 3});
  CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3, 2}), 1, 1), Catch::Contains("has 3 channels but weight"));
  CHECK_THROWS_WITH(conv2d(Tensor::zeros({5, 5, 3}), Tensor::zeros({4, 3, 3, 3}), 1, 1),
                    Catch::Contains("expected a 4-D tensor"));
  CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3}), 1, 1), Catch::Contains("weight w, OHWI"));
  CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3, 3}, DType::f64), 1, 1), Catch::Contains("dtype mismatch"));
  CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({4, 3, 3, 3}), 0, 1), Catch::Contains("stride must be >= 1"));
  CHECK_THROWS_WITH(conv2d(x, Tensor::zeros({4, 9, 9, 3}), 1, 1), Catch::Contains("does not fit"));
  CHECK_THROWS_WITH(conv2d(Tensor::zeros({2, 5, 5, 3}, DType::i32), Tensor::zeros({4, 3, 3, 3}, DType::i32), 1, 1),
                    Catch::Contains("not supported"));
}

// ================================================================ pooling

TEST_CASE("max_pool2d: ties go to the first element in window order, padding never wins", "[ops][pool]") {
  // Constant image: every window is all ties. 4x4, 3x3/2/1 windows: output (ho,wo) starts at
  // input (2ho-1, 2wo-1), so its first in-image element is (max(2ho-1,0), max(2wo-1,0)).
  Tensor x = Tensor::full({1, 4, 4, 1}, -3.0, DType::f64).set_requires_grad();
  Tensor y = max_pool2d(x);
  REQUIRE(y.shape() == Shape({1, 2, 2, 1}));
  for (int i = 0; i < 4; i++) CHECK(y.at(i) == -3.0);  // padding (0) never wins over negative pixels
  backward(sum_product(y, Tensor::full({1, 2, 2, 1}, 1.0, DType::f64)));
  std::vector<double> expect(16, 0.0);
  for (int ho = 0; ho < 2; ho++)
    for (int wo = 0; wo < 2; wo++) expect[std::max(2 * ho - 1, 0) * 4 + std::max(2 * wo - 1, 0)] += 1;
  for (int i = 0; i < 16; i++) CHECK(x.grad().at(i) == expect[i]);
}

TEST_CASE("max_pool2d: error paths", "[ops][pool][errors]") {
  CHECK_THROWS_WITH(max_pool2d(Tensor::zeros({4, 4, 3})), Catch::Contains("expected a 4-D tensor"));
  CHECK_THROWS_WITH(max_pool2d(Tensor::zeros({1, 4, 4, 3}), 3, 2, 2), Catch::Contains("padding must be in [0, kernel/2]"));
  CHECK_THROWS_WITH(max_pool2d(Tensor::zeros({1, 2, 2, 3}), 5, 1, 1), Catch::Contains("does not fit"));
}

TEST_CASE("global_avg_pool: error paths", "[ops][pool][errors]") {
  CHECK_THROWS_WITH(global_avg_pool(Tensor::zeros({3, 6})), Catch::Contains("expected a 4-D tensor"));
}

// ================================================================ batch norm

TEST_CASE("batch_norm: training output has per-channel mean 0 and variance 1", "[ops][bn]") {
  Tensor x = rand_tensor({4, 5, 3, 6}, 61, -3, 5);
  std::vector<double> mu, var;
  channel_stats(x, mu, var);
  BatchNormOptions opt;
  Tensor y = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), opt);
  std::vector<double> ymu, yvar;
  channel_stats(y, ymu, yvar);
  for (int c = 0; c < 6; c++) {
    CHECK(std::abs(ymu[c]) < 1e-14);
    CHECK(yvar[c] == Approx(var[c] / (var[c] + opt.eps)).epsilon(1e-12));  // biased variance, eps in the denominator
  }
  // affine: mean beta, standard deviation |gamma|
  Tensor g = Tensor::from_vector<double>({2, -1, 0.5, 3, 1, 1}, {6});
  Tensor b = Tensor::from_vector<double>({0, 1, -2, 0.25, 7, -7}, {6});
  opt.eps = 1e-12;
  Tensor ya = batch_norm(x, g, b, Tensor(), Tensor(), opt);
  channel_stats(ya, ymu, yvar);
  for (int c = 0; c < 6; c++) {
    CHECK(ymu[c] == Approx(b.at(c)).margin(1e-12));
    CHECK(yvar[c] == Approx(g.at(c) * g.at(c)).epsilon(1e-10));
  }
}

TEST_CASE("batch_norm: running statistics after one step follow the formula, eval uses them", "[ops][bn]") {
  Tensor x = rand_tensor({5, 3, 2, 4}, 71, -1, 3, DType::f32);
  Tensor rm = Tensor::from_vector<float>({0.5f, -1.f, 0.f, 2.f}, {4});
  Tensor rv = Tensor::from_vector<float>({1.f, 2.f, 0.5f, 4.f}, {4});
  std::vector<double> rm0 = {0.5, -1, 0, 2}, rv0 = {1, 2, 0.5, 4};
  std::vector<double> mu, var;
  channel_stats(x, mu, var);
  const double M = 30;
  BatchNormOptions opt;
  opt.momentum = 0.1;
  {
    NoGrad ng;  // the update happens in training mode whether or not gradients are recorded
    batch_norm(x, Tensor(), Tensor(), rm, rv, opt);
  }
  for (int c = 0; c < 4; c++) {
    CHECK(rm.at(c) == Approx(0.9 * rm0[c] + 0.1 * mu[c]).epsilon(1e-6));
    CHECK(rv.at(c) == Approx(0.9 * rv0[c] + 0.1 * var[c] * M / (M - 1)).epsilon(1e-6));  // unbiased
  }
  // eval: (x - running_mean) / sqrt(running_var + eps) * gamma + beta, running stats untouched
  Tensor g = Tensor::from_vector<float>({1.5f, -0.5f, 2.f, 1.f}, {4});
  Tensor b = Tensor::from_vector<float>({0.1f, 0.2f, -0.3f, 0.f}, {4});
  Tensor rm1 = rm.clone(), rv1 = rv.clone();
  opt.training = false;
  Tensor y = batch_norm(x, g, b, rm, rv, opt);
  double worst = 0;
  for (int64_t i = 0; i < x.numel(); i++) {
    const int64_t c = i % 4;
    const double ref = (x.at(i) - rm1.at(c)) / std::sqrt(rv1.at(c) + opt.eps) * g.at(c) + b.at(c);
    worst = std::max(worst, std::abs(y.at(i) - ref));
  }
  CHECK(worst < 1e-5);
  CHECK(rel_err(rm, rm1) == 0.0);
  CHECK(rel_err(rv, rv1) == 0.0);
  // f64 input with f32 running buffers: the same update
  Tensor rm2 = Tensor::from_vector<float>({0.5f, -1.f, 0.f, 2.f}, {4});
  Tensor rv2 = Tensor::from_vector<float>({1.f, 2.f, 0.5f, 4.f}, {4});
  opt.training = true;
  batch_norm(x.to(DType::f64), Tensor(), Tensor(), rm2, rv2, opt);
  CHECK(rel_err(rm2, rm1) < 1e-6);
  CHECK(rel_err(rv2, rv1) < 1e-6);
}

TEST_CASE("batch_norm: global BN over two thread ranks equals full-batch BN", "[ops][bn][comm]") {
  const int64_t N = 4, H = 3, W = 2, C = 3;
  Tensor x = rand_tensor({N, H, W, C}, 91, -1, 2);
  Tensor gamma = rand_tensor({C}, 92, 0.5, 1.5), beta = rand_tensor({C}, 93);
  Tensor r = rand_tensor({N, H, W, C}, 94);
  BatchNormOptions opt;
  opt.momentum = 0.3;

  // reference: one process, the whole batch
  Tensor xf = x.clone().set_requires_grad(), gf = gamma.clone().set_requires_grad();
  Tensor bf = beta.clone().set_requires_grad();
  Tensor rmf = Tensor::zeros({C}, DType::f64), rvf = Tensor::full({C}, 1.0, DType::f64);
  Tensor yf = batch_norm(xf, gf, bf, rmf, rvf, opt);
  backward(sum_product(yf, r));

  for (int64_t split : {int64_t(2), int64_t(1)}) {  // even split, then 1 image vs 3
    INFO("rank 0 holds " << split << " of " << N << " images");
    ThreadGroup group(2);
    struct Rank {
      Tensor x, g, b, rm, rv, y;
      std::exception_ptr error;
    } ranks[2];
    const int64_t bounds[3] = {0, split, N};
    for (int k = 0; k < 2; k++) {
      ranks[k].x = x.slice0(bounds[k], bounds[k + 1]).clone().set_requires_grad();
      ranks[k].g = gamma.clone().set_requires_grad();
      ranks[k].b = beta.clone().set_requires_grad();
      ranks[k].rm = Tensor::zeros({C}, DType::f64);
      ranks[k].rv = Tensor::full({C}, 1.0, DType::f64);
    }
    std::vector<std::thread> threads;
    for (int k = 0; k < 2; k++) {
      threads.emplace_back([&, k]() {
        try {  // each thread has its own tape (thread_local)
          ThreadComm comm(group, k);
          BatchNormOptions o = opt;
          o.comm = &comm;
          Rank& me = ranks[k];
          me.y = batch_norm(me.x, me.g, me.b, me.rm, me.rv, o);
          backward(sum_product(me.y, r.slice0(bounds[k], bounds[k + 1]).clone()));
        } catch (...) {
          ranks[k].error = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int k = 0; k < 2; k++)
      if (ranks[k].error) std::rethrow_exception(ranks[k].error);

    for (int k = 0; k < 2; k++) {
      CHECK(rel_err(ranks[k].y, yf.slice0(bounds[k], bounds[k + 1])) < 1e-13);
      CHECK(rel_err(ranks[k].x.grad(), xf.grad().slice0(bounds[k], bounds[k + 1])) < 1e-12);
      CHECK(rel_err(ranks[k].rm, rmf) < 1e-14);
      CHECK(rel_err(ranks[k].rv, rvf) < 1e-14);
    }
    Tensor dg = add(ranks[0].g.grad(), ranks[1].g.grad());  // the gradient all-reduce's job
    Tensor db = add(ranks[0].b.grad(), ranks[1].b.grad());
    CHECK(rel_err(dg, gf.grad()) < 1e-13);
    CHECK(rel_err(db, bf.grad()) < 1e-13);
    // and each rank's share is not the whole: the test can tell local from global sums
    CHECK(rel_err(ranks[0].g.grad(), gf.grad()) > 1e-3);
  }
}

TEST_CASE("batch_norm: error paths", "[ops][bn][errors]") {
  BatchNormOptions opt;
  Tensor x = Tensor::zeros({2, 3, 3, 4});
  CHECK_THROWS_WITH(batch_norm(x, Tensor::zeros({3}), Tensor(), Tensor(), Tensor(), opt),
                    Catch::Contains("must have shape [4]"));
  CHECK_THROWS_WITH(batch_norm(x, Tensor(), Tensor(), Tensor::zeros({5}), Tensor::zeros({5}), opt),
                    Catch::Contains("running_mean"));
  CHECK_THROWS_WITH(batch_norm(x, Tensor(), Tensor(), Tensor::zeros({4}), Tensor(), opt),
                    Catch::Contains("given together"));
  CHECK_THROWS_WITH(batch_norm(Tensor::zeros({4}), Tensor(), Tensor(), Tensor(), Tensor(), opt),
                    Catch::Contains("at least 2 dims"));
  CHECK_THROWS_WITH(batch_norm(x, Tensor::zeros({4}, DType::f64), Tensor(), Tensor(), Tensor(), opt),
                    Catch::Contains("must have the dtype of input"));
  CHECK_THROWS_WITH(batch_norm(Tensor::zeros({1, 4}), Tensor(), Tensor(), Tensor(), Tensor(), opt),
                    Catch::Contains("more than one value per channel"));
  opt.training = false;
  CHECK_THROWS_WITH(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), opt),
                    Catch::Contains("eval mode needs running_mean"));
}

// ================================================================ l2_normalize

TEST_CASE("l2_normalize: error paths", "[ops][l2][errors]") {
  CHECK_THROWS_WITH(l2_normalize(Tensor::zeros({2, 3, 4})), Catch::Contains("expected a 2-D tensor"));
  CHECK_THROWS_WITH(l2_normalize(Tensor::zeros({2, 3}), 0.0), Catch::Contains("eps must be > 0"));
}

// ================================================================ cross_entropy

TEST_CASE("cross_entropy: closed forms (uniform logits, large logits)", "[ops][ce]") {
  // uniform logits: log K whatever the labels
  Tensor u = Tensor::full({3, 10}, 2.5, DType::f64);
  CHECK(cross_entropy(u, Tensor::from_vector<int64_t>({0, 9, 4}, {3})).item() == Approx(std::log(10.0)).epsilon(1e-15));
  // large logits stay finite (max subtraction)
  Tensor big = Tensor::from_vector<double>({1000, 0, -1000, 1000}, {2, 2});
  CHECK(cross_entropy(big, Tensor::from_vector<int32_t>({1, 0}, {2})).item() ==
        Approx((1000 + 2000) / 2.0).epsilon(1e-15));
  CHECK(cross_entropy(big, Tensor::from_vector<int32_t>({0, 1}, {2})).item() == Approx(0.0).margin(1e-15));
}

TEST_CASE("cross_entropy: error paths", "[ops][ce][errors]") {
  Tensor z = Tensor::zeros({3, 4});
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_vector<int64_t>({0, 4, 1}, {3})),
                    Catch::Contains("label 4 of row 1 is outside [0, 4)"));
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_vector<int32_t>({0, 1, -1}, {3})),
                    Catch::Contains("label -1 of row 2"));
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::from_vector<int32_t>({0, 1}, {2})), Catch::Contains("2 labels"));
  CHECK_THROWS_WITH(cross_entropy(z, Tensor::zeros({3})), Catch::Contains("labels must be i32 or i64"));
  CHECK_THROWS_WITH(cross_entropy(Tensor::zeros({3}), Tensor::zeros({3}, DType::i64)),
                    Catch::Contains("expected a 2-D tensor"));
}
