// tests/emu/test_dist_emu.cpp - the distributed ops on the emulated device
// (the CUDA backend's kernels): NT-Xent with gathered negatives, where the
// fused kernels run at row offsets r0 = rB and N + rB of the global z, and
// global batch norm with its merge_stats kernel, over R ranks as threads
// (tests/thread_comm.h), each against the single op on emu over the
// concatenated batch. Both sides run the same float kernels; what differs is
// which rows a launch holds (the NT-Xent key split and partial sums, the BN
// reductions' chunking), so agreement is to float rounding, not bitwise.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/autograd.h"
#include "kernels/registry.h"
#include "losses/losses.h"
#include "tests/helpers.h"
#include "tests/skip.h"
#include "tests/thread_comm.h"

using namespace simclr;
using simclr::test::rand_tensor;
using simclr::test::rel_err;

TEST_CASE("emu dist: NT-Xent with gathered negatives on the fused kernels = the op over the whole batch",
          "[emu][dist]") {
  if (!emulator_built()) SIMCLR_SKIP("no kernel emulator in this build");
  const Device E = Device::emu();
  for (int R : {2, 3}) {
    INFO("ranks " << R);
    const int64_t B = 5, D = 24, N = R * B, V = 2 * N;
    const double tau = 0.2;
    Tensor zg = rand_tensor({V, D}, 40 + R, -1, 1, DType::f32);
    Tensor zr = zg.to(E).set_requires_grad();
    Tensor lr = ntxent(zr, tau);
    backward(lr);
    const double loss_ref = lr.item();
    const Tensor g_ref = zr.grad().to(Device::cpu());
    std::vector<double> loss(R);
    std::vector<Tensor> grad(R);
    simclr::test::run_ranks(R, [&](Communicator& c, int r) {
      Tensor z = Tensor::empty({2 * B, D}, DType::f32);
      z.slice0(0, B).copy_from(zg.slice0(r * B, r * B + B));
      z.slice0(B, 2 * B).copy_from(zg.slice0(N + r * B, N + r * B + B));
      Tensor ze = z.to(E).set_requires_grad();
      Tensor l = ntxent(ze, tau, &c);
      loss[r] = l.item();
      backward(l);
      grad[r] = ze.grad().to(Device::cpu());
    });
    for (int r = 0; r < R; r++) {
      // f32 loss: the ranks' partial sums added in another order (a few ulp of ~3)
      CHECK(std::abs(loss[r] - loss_ref) <= 1e-6 * std::abs(loss_ref));
      Tensor want = Tensor::empty({2 * B, D}, DType::f32);
      want.slice0(0, B).copy_from(g_ref.slice0(r * B, r * B + B));
      want.slice0(B, 2 * B).copy_from(g_ref.slice0(N + r * B, N + r * B + B));
      // the same per-row float arithmetic, partial sums over other key splits: 1e-5 normwise
      CHECK(rel_err(grad[r], want) < 1e-5);
    }
  }
}

TEST_CASE("emu dist: global batch norm (merge_stats kernel) over unequal ranks = BN over the whole batch",
          "[emu][dist]") {
  if (!emulator_built()) SIMCLR_SKIP("no kernel emulator in this build");
  const Device E = Device::emu();
  const int64_t C = 12, N = 9;
  const int64_t start[] = {0, 2, 9};  // 2 and 7 images
  Tensor x = rand_tensor({N, 4, 4, C}, 51, 2, 5, DType::f32), w = rand_tensor({N, 4, 4, C}, 52, -1, 1, DType::f32);
  Tensor g = rand_tensor({C}, 53, 0.5, 1.5, DType::f32), b = rand_tensor({C}, 54, -1, 1, DType::f32);
  auto run = [&](const Tensor& xs, const Tensor& ws, Communicator* comm, Tensor* dx, Tensor* dg, Tensor* rv) {
    Tensor xe = xs.to(E).set_requires_grad(), ge = g.to(E).set_requires_grad(), be = b.to(E).set_requires_grad();
    Tensor rm = Tensor::zeros({C}, DType::f32, E), rve = Tensor::full({C}, 1.0, DType::f32, E);
    BatchNormOptions o;
    o.comm = comm;
    o.relu = true;
    Tensor y = batch_norm(xe, ge, be, rm, rve, o);
    backward(sum_product(y, ws.to(E)));
    *dx = xe.grad().to(Device::cpu());
    *dg = ge.grad().to(Device::cpu());
    *rv = rve.to(Device::cpu());
    return y.to(Device::cpu());
  };
  Tensor dx_ref, dg_ref, rv_ref;
  const Tensor y_ref = run(x, w, nullptr, &dx_ref, &dg_ref, &rv_ref);
  std::vector<Tensor> y(2), dx(2), dg(2), rv(2);
  simclr::test::run_ranks(2, [&](Communicator& c, int r) {
    y[r] = run(x.slice0(start[r], start[r + 1]).clone(), w.slice0(start[r], start[r + 1]).clone(), &c, &dx[r],
               &dg[r], &rv[r]);
  });
  for (int r = 0; r < 2; r++) {
    // float: the statistics of other row chunks merged in double; y and dx within a few ulp
    CHECK(rel_err(y[r], y_ref.slice0(start[r], start[r + 1])) < 1e-5);
    CHECK(rel_err(dx[r], dx_ref.slice0(start[r], start[r + 1])) < 1e-4);
    CHECK(rel_err(rv[r], rv_ref) < 1e-6);
  }
  Tensor dgs = Tensor::empty({C}, DType::f32);
  for (int64_t c = 0; c < C; c++) dgs.data<float>()[c] = static_cast<float>(dg[0].at(c) + dg[1].at(c));
  CHECK(rel_err(dgs, dg_ref) < 1e-5);
}
