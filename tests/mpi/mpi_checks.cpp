// tests/mpi/mpi_checks.cpp - the communicator and the distributed ops over
// real processes: run under `mpirun -np R mpi_checks <mode>` by
// tests/mpi/mpi_check.py (ctest "mpi: ..."). Every rank prints "rank r: ok
// <what>" per check and exits 0 only when all passed.
//   collectives  all_reduce_sum (f32, f64, i32, i64; 2^20 + 3 elements so the
//                sum is not a toy), all_gather (into a slice), broadcast,
//                barrier; rank/size equal the launcher's; a bad call throws
//                naming the call and the rank
//   bn           global batch norm with unequal rows per rank (rank r holds
//                r + 2 images; with -np 3 one rank has 4 rows...) against the
//                single-process op over the concatenated batch that every rank
//                recomputes locally: y, dx, dγ/dβ summed over ranks, running stats
//   ntxent       NT-Xent with negatives from every rank against one process:
//                the loss on every rank and each rank's gradient rows
//   die          rank 1 exits with status 3 after one collective, the others
//                enter another: the launcher must end them (the driver times it)
//   hang         rank 1 sleeps; rank 0 waits in a collective: with
//                SIMCLR_COMM_TIMEOUT=2 its watchdog ends it with a message
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/comm.h"
#include "engine/launch_env.h"
#include "losses/losses.h"
#include "ops/ops.h"

using namespace simclr;

namespace {

int g_rank = 0, g_failed = 0;

void check(bool ok, const std::string& what) {
  std::printf("rank %d: %s %s\n", g_rank, ok ? "ok" : "FAILED", what.c_str());
  std::fflush(stdout);
  if (!ok) g_failed++;
}

Tensor rand_f64(const Shape& s, uint64_t seed, double lo, double hi) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  Tensor t = Tensor::empty(s, DType::f64);
  for (int64_t i = 0; i < t.numel(); i++) t.data<double>()[i] = u(g);
  return t;
}

double rel_err(const Tensor& a, const Tensor& b) {
  double m = 0, n = 1e-300;
  for (int64_t i = 0; i < a.numel(); i++) {
    const double d = std::abs(a.at(i) - b.at(i));
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
    n = std::max(n, std::abs(b.at(i)));
  }
  return m / n;
}

void collectives(Communicator& c, const LaunchEnv& env) {
  const int R = c.size(), r = c.rank();
  check(c.backend() == "mpi" && r == env.rank && R == env.size, "rank and size are the launcher's: " + env.describe());
  const int64_t n = (1 << 20) + 3;
  for (DType dt : {DType::f32, DType::f64, DType::i32, DType::i64}) {
    Tensor t = Tensor::empty({n}, DType::f64);
    for (int64_t i = 0; i < n; i++) t.data<double>()[i] = static_cast<double>((i % 1000) * (r + 1));
    Tensor x = t.to(dt);
    c.all_reduce_sum(x);
    bool ok = true;
    const double f = R * (R + 1) / 2.0;
    for (int64_t i = 0; i < n && ok; i++) ok = x.at(i) == static_cast<double>(i % 1000) * f;
    check(ok, std::string("all_reduce_sum ") + dtype_name(dt) + " of 2^20+3 elements");
  }
  {
    // sums of inexact floats: every rank must get the same bits (else replicas drift apart)
    Tensor x = rand_f64({(1 << 18) + 5}, 100 + r, -1, 1).to(DType::f32);
    c.all_reduce_sum(x);
    Tensor all = Tensor::empty({R * x.numel()}, DType::f32);
    c.all_gather(all, x);
    bool same = true;
    for (int q = 1; q < R; q++)
      same = same && std::memcmp(all.data<float>(), all.data<float>() + q * x.numel(), x.nbytes()) == 0;
    check(same, "all_reduce_sum of inexact f32 values gives every rank the same bits");
  }
  Tensor in = Tensor::full({3, 2}, r + 0.5, DType::f32);
  Tensor big = Tensor::zeros({R * 3 + 2, 2}, DType::f32), out = big.slice0(1, 1 + R * 3);
  c.all_gather(out, in);
  bool ok = big.at(0) == 0 && big.at(big.numel() - 1) == 0;
  for (int q = 0; q < R; q++)
    for (int i = 0; i < 6; i++) ok = ok && out.at(q * 6 + i) == q + 0.5;
  check(ok, "all_gather into a slice, rank order, nothing outside it written");
  Tensor b = Tensor::full({5}, r == R - 1 ? 7.0 : -1.0, DType::i64);
  c.broadcast(b, R - 1);
  check(b.at(4) == 7, "broadcast from the last rank");
  c.barrier();
  check(true, "barrier");
  Tensor wrong = Tensor::zeros({1}, DType::f32);
  bool threw = false;
  try {
    c.all_gather(wrong, in);
  } catch (const Error& e) {
    threw = std::strstr(e.what(), "all_gather on rank") != nullptr;
    std::printf("rank %d: (expected error) %s\n", r, e.what());
  }
  check(threw, "a wrong all_gather throws naming the call and the rank");
}

struct BnOut {
  Tensor y, dx, dg, db, rm, rv;
};
BnOut bn(const Tensor& x0, const Tensor& w, const Tensor& g0, const Tensor& b0, Communicator* comm) {
  Tensor x = x0.clone().set_requires_grad(), g = g0.clone().set_requires_grad(), b = b0.clone().set_requires_grad();
  const int64_t C = x0.size(-1);
  Tensor rm = Tensor::zeros({C}, DType::f64), rv = Tensor::full({C}, 1.0, DType::f64);
  BatchNormOptions o;
  o.comm = comm;
  o.relu = true;
  Tensor y = batch_norm(x, g, b, rm, rv, o);
  backward(sum_product(y, w));
  return {y, x.grad(), g.grad(), b.grad(), rm, rv};
}

void bn_check(Communicator& c) {
  const int R = c.size(), r = c.rank();
  const int64_t C = 6;
  std::vector<int64_t> start(R + 1, 0);
  for (int q = 0; q < R; q++) start[q + 1] = start[q] + q + 2;  // q + 2 images on rank q: unequal
  const int64_t N = start[R];
  Tensor x = rand_f64({N, 3, 3, C}, 5, -1, 4), w = rand_f64({N, 3, 3, C}, 6, -1, 1);
  Tensor g = rand_f64({C}, 7, 0.5, 1.5), b = rand_f64({C}, 8, -0.5, 0.5);
  const BnOut ref = bn(x, w, g, b, nullptr);  // one process over the concatenated batch
  const BnOut got = bn(x.slice0(start[r], start[r + 1]).clone(), w.slice0(start[r], start[r + 1]).clone(), g, b, &c);
  check(rel_err(got.y, ref.y.slice0(start[r], start[r + 1])) < 1e-12, "global BN output = the concatenated batch's");
  check(rel_err(got.dx, ref.dx.slice0(start[r], start[r + 1])) < 1e-11, "global BN dx of this rank's rows");
  check(rel_err(got.rm, ref.rm) < 1e-13 && rel_err(got.rv, ref.rv) < 1e-13, "running statistics");
  Tensor dg = got.dg.clone(), db = got.db.clone();
  c.all_reduce_sum(dg);  // what the gradient all-reduce does
  c.all_reduce_sum(db);
  check(rel_err(dg, ref.dg) < 1e-12 && rel_err(db, ref.db) < 1e-12, "dγ, dβ summed over the ranks");
}

void ntxent_check(Communicator& c) {
  const int R = c.size(), r = c.rank();
  const int64_t B = 3, D = 5, N = R * B, V = 2 * N;
  Tensor zg = rand_f64({V, D}, 11, -1, 1);
  Tensor zr = zg.clone().set_requires_grad();
  Tensor lr = ntxent(zr, 0.2);
  backward(lr);
  Tensor z = Tensor::empty({2 * B, D}, DType::f64);
  z.slice0(0, B).copy_from(zg.slice0(r * B, r * B + B));
  z.slice0(B, 2 * B).copy_from(zg.slice0(N + r * B, N + r * B + B));
  z.set_requires_grad();
  Tensor l = ntxent(z, 0.2, &c);
  const double loss = l.item();
  backward(l);
  check(std::abs(loss - lr.item()) <= 1e-14 * std::abs(lr.item()), "NT-Xent: the global loss on every rank");
  Tensor want = Tensor::empty({2 * B, D}, DType::f64);
  want.slice0(0, B).copy_from(zr.grad().slice0(r * B, r * B + B));
  want.slice0(B, 2 * B).copy_from(zr.grad().slice0(N + r * B, N + r * B + B));
  check(rel_err(z.grad(), want) < 1e-13, "NT-Xent: this rank's gradient rows, complete");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "collectives";
  try {
    const LaunchEnv env = process_launch_env();
    g_rank = env.rank;
    std::unique_ptr<Communicator> c = make_communicator(env);
    if (mode == "collectives") {
      collectives(*c, env);
    } else if (mode == "bn") {
      bn_check(*c);
    } else if (mode == "ntxent") {
      ntxent_check(*c);
    } else if (mode == "die" || mode == "hang") {
      Tensor t = Tensor::full({4}, 1.0, DType::f64);
      c->all_reduce_sum(t);
      if (c->rank() == 1) {
        std::printf("rank 1: %s now\n", mode == "die" ? "exiting with status 3" : "sleeping 60 s");
        std::fflush(stdout);
        if (mode == "die") std::_Exit(3);
        sleep(60);
        std::_Exit(0);
      }
      std::printf("rank %d: entering MPI_Allreduce\n", c->rank());
      std::fflush(stdout);
      c->all_reduce_sum(t);
      std::printf("rank %d: FAILED the collective completed without rank 1\n", c->rank());
      return 1;
    } else {
      std::fprintf(stderr, "mpi_checks: unknown mode %s\n", mode.c_str());
      return 2;
    }
  } catch (const std::exception& e) {
    std::printf("rank %d: FAILED %s\n", g_rank, e.what());
    return 1;
  }
  return g_failed == 0 ? 0 : 1;
}
