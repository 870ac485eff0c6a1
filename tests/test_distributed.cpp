// tests/test_distributed.cpp - the multi-process pieces in one process:
// launcher environment -> rank/world/local rank (each launcher's variables and
// the errors), the communicator factory at world size 1, the batch-norm
// statistics merge (Chan's formula) against the concatenated batch, and the
// two distributed ops with R "ranks" as threads (tests/thread_comm.h):
// global batch norm with unequal row counts per rank, and NT-Xent with
// negatives from every rank, each against the single-process op over the
// concatenated batch (values, every gradient, running statistics); and the
// loader's shards, which together are one process's batches.
// tests/mpi/ runs the same ops over real processes (mpirun).
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "data/loader.h"
#include "engine/comm.h"
#include "engine/launch_env.h"
#include "helpers.h"
#include "kernels/batchnorm.h"
#include "kernels/registry.h"
#include "thread_comm.h"
#include "train/run_config.h"

using namespace simclr;
using simclr::test::rand_tensor;
using simclr::test::rel_err;

// ================================================================ launcher environment

TEST_CASE("launch env: no launcher is a single process", "[dist][launch_env]") {
  LaunchEnv e = launch_env_from({});
  CHECK(e.rank == 0);
  CHECK(e.size == 1);
  CHECK(e.local_rank == 0);
  CHECK(e.launcher == "none");
  CHECK_FALSE(e.multi());
}

TEST_CASE("launch env: OpenMPI, SLURM and PMI variables", "[dist][launch_env]") {
  LaunchEnv o = launch_env_from(
      {{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  CHECK(o.launcher == "openmpi");
  CHECK(o.rank == 5);
  CHECK(o.size == 8);
  CHECK(o.local_rank == 1);
  CHECK(o.describe() == "rank 5 of 8 (local rank 1, from openmpi)");

  LaunchEnv s = launch_env_from(
      {{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "3"}, {"SLURM_STEP_ID", "0"}});
  CHECK(s.launcher == "slurm");
  CHECK(s.rank == 3);
  CHECK(s.size == 4);
  CHECK(s.local_rank == 3);

  LaunchEnv p = launch_env_from({{"PMI_RANK", "2"}, {"PMI_SIZE", "6"}, {"MPI_LOCALRANKID", "0"}});
  CHECK(p.launcher == "pmi");
  CHECK(p.rank == 2);
  CHECK(p.size == 6);
  CHECK(p.local_rank == 0);
  LaunchEnv p2 = launch_env_from({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"PMI_LOCAL_RANK", "1"}});
  CHECK(p2.local_rank == 1);
  LaunchEnv p3 = launch_env_from({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}});  // no local rank: 0
  CHECK(p3.local_rank == 0);
}

TEST_CASE("launch env: the batch script's SLURM variables are not a step", "[dist][launch_env]") {
  // sbatch sets SLURM_PROCID/SLURM_NTASKS for the script itself: one process, not ntasks
  EnvMap batch = {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "0"}};
  CHECK(launch_env_from(batch).size == 1);
  batch["SLURM_STEP_ID"] = "batch";
  CHECK(launch_env_from(batch).size == 1);
  batch["SLURM_STEP_ID"] = "2";
  CHECK(launch_env_from(batch).size == 16);
}

TEST_CASE("launch env: the innermost launcher wins (mpirun under SLURM)", "[dist][launch_env]") {
  // mpirun's daemons run as one srun task per node: its ranks see the daemon step's SLURM_PROCID
  LaunchEnv e = launch_env_from({{"OMPI_COMM_WORLD_RANK", "6"},
                                 {"OMPI_COMM_WORLD_SIZE", "8"},
                                 {"OMPI_COMM_WORLD_LOCAL_RANK", "2"},
                                 {"SLURM_PROCID", "1"},
                                 {"SLURM_NTASKS", "2"},
                                 {"SLURM_LOCALID", "0"},
                                 {"SLURM_STEP_ID", "0"}});
  CHECK(e.launcher == "openmpi");
  CHECK(e.rank == 6);
  CHECK(e.local_rank == 2);
  // srun --mpi=pmi2: PMI_* and SLURM_* both set, PMI first
  LaunchEnv p = launch_env_from({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"},
                                 {"SLURM_LOCALID", "1"}, {"SLURM_STEP_ID", "0"}});
  CHECK(p.launcher == "pmi");
  CHECK(p.rank == 1);
  // SIMCLR_LAUNCHER=none forces one process
  CHECK(launch_env_from({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"SIMCLR_LAUNCHER", "none"}})
            .size == 1);
}

TEST_CASE("launch env: inconsistent or malformed values are errors naming the variable", "[dist][launch_env]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(launch_env_from({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}}),
                    Contains("OMPI_COMM_WORLD_RANK=2 is outside [0, OMPI_COMM_WORLD_SIZE=2)"));
  CHECK_THROWS_WITH(launch_env_from({{"OMPI_COMM_WORLD_RANK", "0"}}),
                    Contains("OMPI_COMM_WORLD_SIZE is missing but OMPI_COMM_WORLD_RANK is set"));
  CHECK_THROWS_WITH(launch_env_from({{"PMI_SIZE", "4"}}), Contains("PMI_RANK is missing but PMI_SIZE is set"));
  CHECK_THROWS_WITH(launch_env_from({{"SLURM_PROCID", "x1"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"}}),
                    Contains("SLURM_PROCID=\"x1\" is not an integer"));
  CHECK_THROWS_WITH(launch_env_from({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "0"}, {"SLURM_STEP_ID", "0"}}),
                    Contains("SLURM_NTASKS=0 must be >= 1"));
  CHECK_THROWS_WITH(launch_env_from({{"SLURM_PROCID", "-1"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"}}),
                    Contains("SLURM_PROCID=-1 is outside [0, SLURM_NTASKS=2)"));
  CHECK_THROWS_WITH(launch_env_from({{"OMPI_COMM_WORLD_RANK", "0"},
                                     {"OMPI_COMM_WORLD_SIZE", "2"},
                                     {"OMPI_COMM_WORLD_LOCAL_RANK", "3"}}),
                    Contains("OMPI_COMM_WORLD_LOCAL_RANK=3 is outside [0, OMPI_COMM_WORLD_SIZE=2)"));
  CHECK_THROWS_WITH(launch_env_from({{"OMPI_COMM_WORLD_RANK", "0"},
                                     {"OMPI_COMM_WORLD_SIZE", "4"},
                                     {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}}),
                    Contains("local rank 1 (OMPI_COMM_WORLD_LOCAL_RANK) exceeds the global rank 0"));
  CHECK_THROWS_WITH(launch_env_from({{"SIMCLR_LAUNCHER", "slurm"}}), Contains("SIMCLR_LAUNCHER=\"slurm\""));
}

TEST_CASE("communicator: a world of one is local and loads no MPI", "[dist][comm]") {
  std::unique_ptr<Communicator> c = make_communicator(LaunchEnv{});
  CHECK(c->backend() == "local");
  CHECK(c->rank() == 0);
  CHECK(c->size() == 1);
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});
  c->all_reduce_sum(t);
  c->broadcast(t, 0);
  c->barrier();
  CHECK(t.at(2) == 3);
  Tensor out = Tensor::zeros({3});
  c->all_gather(out, t);
  CHECK(out.at(1) == 2);
}

TEST_CASE("communicator: a larger world without a loadable MPI plugin is a clear error", "[dist][comm]") {
  std::string why;
  if (mpi_plugin_available(&why)) {
    // (the plugin is built: pointing SIMCLR_MPI_PLUGIN elsewhere would not unload it, so the message is
    // checked through a world whose environment does not match MPI's instead: tests/mpi covers it)
    SUCCEED("MPI plugin present");
    return;
  }
  LaunchEnv e;
  e.size = 2;
  e.launcher = "openmpi";
  CHECK_THROWS_WITH(make_communicator(e), Catch::Contains("rank 0 of 2") && Catch::Contains("libsimclr_mpi.so"));
}

// ================================================================ batch-norm statistics merge

namespace {
// stats of rows [m0, m1) of x[M, C] (f64) through the CPU kernel
std::vector<double> stats_of(const std::vector<double>& x, int64_t m0, int64_t m1, int64_t C) {
  std::vector<double> s(2 * C + 1, std::numeric_limits<double>::quiet_NaN());
  kernels_for<BatchNormKernels, double>(Device::cpu()).stats(s.data(), x.data() + m0 * C, m1 - m0, C);
  return s;
}
}  // namespace

TEST_CASE("bn merge_stats: Chan's merge of unequal ranks equals the concatenated batch", "[dist][bn]") {
  const auto& k = kernels_for<BatchNormKernels, double>(Device::cpu());
  const int64_t C = 3, M = 50;
  // offset 1e8, spread ~1: Σx²/n ~ 1e16, so Σx² - (Σx)²/n in double (the all-reduce of sums)
  // loses everything below ~1 (1e16 · 1e-16): the variance would be off by O(1).
  std::mt19937_64 g(3);
  std::normal_distribution<double> nd;
  std::vector<double> x(static_cast<size_t>(M * C));
  for (int64_t m = 0; m < M; m++)
    for (int64_t c = 0; c < C; c++) x[m * C + c] = 1e8 * (c + 1) + (c + 1) * 0.5 * nd(g);
  // exact two-pass reference
  std::vector<double> mu(C, 0), m2(C, 0);
  for (int64_t c = 0; c < C; c++) {
    for (int64_t m = 0; m < M; m++) mu[c] += x[m * C + c];
    mu[c] /= M;
    for (int64_t m = 0; m < M; m++) m2[c] += (x[m * C + c] - mu[c]) * (x[m * C + c] - mu[c]);
  }
  const std::vector<double> whole = stats_of(x, 0, M, C);
  for (int64_t c = 0; c < C; c++) {
    CHECK(whole[c] == Approx(mu[c]).epsilon(1e-15));
    CHECK(whole[C + c] == Approx(m2[c]).epsilon(1e-9));  // shifted sums: only rounding of x - x0
  }
  CHECK(whole[2 * C] == M);
  // four ranks of 7, 0 (empty), 31 and 12 rows
  const int64_t cuts[] = {0, 7, 7, 38, 50};
  std::vector<double> parts;
  for (int r = 0; r < 4; r++) {
    std::vector<double> s = stats_of(x, cuts[r], cuts[r + 1], C);
    parts.insert(parts.end(), s.begin(), s.end());
  }
  CHECK(parts[(2 * C + 1) + 2 * C] == 0);  // the empty rank: count 0, zeros, no NaN
  CHECK(parts[(2 * C + 1)] == 0);
  std::vector<double> merged(2 * C + 1, std::numeric_limits<double>::quiet_NaN());
  k.merge_stats(merged.data(), parts.data(), 4, C);
  CHECK(merged[2 * C] == M);
  for (int64_t c = 0; c < C; c++) {
    // Each rank's mean is rounded at ulp(3e8) = 6e-8, so the differences δ of rank means (O(1))
    // carry ~1e-7 relative error into the δ² terms: 1e-7 on M2 (what summed sums would lose is O(1)).
    CHECK(merged[c] == Approx(mu[c]).epsilon(1e-15));
    CHECK(merged[C + c] == Approx(m2[c]).epsilon(1e-7));
    // what summing (Σx, Σx²) over the ranks would have given: visibly wrong at this offset
    double s1 = 0, s2 = 0;
    for (int64_t m = 0; m < M; m++) s1 += x[m * C + c], s2 += x[m * C + c] * x[m * C + c];
    const double naive_m2 = s2 - s1 * s1 / M;
    INFO("naive M2 " << naive_m2 << " vs " << m2[c]);
    CHECK(std::abs(naive_m2 - m2[c]) > 1e-3 * m2[c]);  // the trap the merge avoids (the test can fail)
  }
  // one rank: the merge is the identity
  std::vector<double> one(2 * C + 1);
  k.merge_stats(one.data(), whole.data(), 1, C);
  CHECK(one == whole);
}

// ================================================================ global batch norm over thread ranks

namespace {

struct BnRun {
  Tensor y, dx, dgamma, dbeta, rm, rv;
};

// BN (training, affine, running stats, optional fused ReLU) of x with loss Σ y·w.
BnRun bn_run(const Tensor& x0, const Tensor& w, const Tensor& g0, const Tensor& b0, Communicator* comm, bool relu) {
  const int64_t C = x0.size(-1);
  Tensor x = x0.clone().set_requires_grad(), g = g0.clone().set_requires_grad(), b = b0.clone().set_requires_grad();
  Tensor rm = Tensor::full({C}, 0.2, DType::f64), rv = Tensor::full({C}, 1.5, DType::f64);
  BatchNormOptions opt;
  opt.comm = comm;
  opt.relu = relu;
  opt.momentum = 0.3;
  Tensor y = batch_norm(x, g, b, rm, rv, opt);
  backward(sum_product(y, w));
  return {y, x.grad(), g.grad(), b.grad(), rm, rv};
}

}  // namespace

TEST_CASE("global batch norm: ranks with unequal counts give the concatenated batch's BN", "[dist][bn]") {
  for (bool relu : {false, true}) {
    INFO("relu " << relu);
    const int64_t C = 5;
    const int64_t rows[] = {3, 8, 1};  // per rank (N of [N, 2, 2, C]): unequal, one rank with a single image
    const int64_t N = 12;
    Tensor x = rand_tensor({N, 2, 2, C}, 11, -2, 3), w = rand_tensor({N, 2, 2, C}, 12);
    Tensor g = rand_tensor({C}, 13, 0.5, 1.5), b = rand_tensor({C}, 14);
    const BnRun ref = bn_run(x, w, g, b, nullptr, relu);
    std::vector<BnRun> got(3);
    const int64_t starts[] = {0, 3, 11};
    simclr::test::run_ranks(3, [&](Communicator& c, int r) {
      const int64_t s = starts[r], e = s + rows[r];
      got[r] = bn_run(x.slice0(s, e).clone(), w.slice0(s, e).clone(), g, b, &c, relu);
    });
    Tensor dg = Tensor::zeros({C}, DType::f64), db = Tensor::zeros({C}, DType::f64);
    for (int r = 0; r < 3; r++) {
      const int64_t s = starts[r], e = s + rows[r];
      CHECK(rel_err(got[r].y, ref.y.slice0(s, e)) < 1e-12);    // f64: only summation order differs
      CHECK(rel_err(got[r].dx, ref.dx.slice0(s, e)) < 1e-11);  // the complete dx of this rank's rows
      CHECK(rel_err(got[r].rm, ref.rm) < 1e-13);               // same running statistics on every rank
      CHECK(rel_err(got[r].rv, ref.rv) < 1e-13);
      for (int64_t c = 0; c < C; c++) {
        dg.data<double>()[c] += got[r].dgamma.at(c);  // γ, β: per-rank shares, summed by the gradient all-reduce
        db.data<double>()[c] += got[r].dbeta.at(c);
      }
    }
    CHECK(rel_err(dg, ref.dgamma) < 1e-12);
    CHECK(rel_err(db, ref.dbeta) < 1e-12);
    // local BN (no communicator) on a rank's rows is not the global BN: the test can tell them apart
    const BnRun local = bn_run(x.slice0(3, 11).clone(), w.slice0(3, 11).clone(), g, b, nullptr, relu);
    CHECK(rel_err(local.y, ref.y.slice0(3, 11)) > 1e-3);
  }
}

TEST_CASE("global batch norm in f32 agrees with one process to float rounding", "[dist][bn]") {
  const int64_t C = 7, N = 10;
  Tensor x = rand_tensor({N, 3, 3, C}, 21, 4, 6, DType::f32), w = rand_tensor({N, 3, 3, C}, 22, -1, 1, DType::f32);
  Tensor g = rand_tensor({C}, 23, 0.5, 1.5, DType::f32), b = rand_tensor({C}, 24, -1, 1, DType::f32);
  const BnRun ref = bn_run(x, w, g, b, nullptr, true);
  std::vector<BnRun> got(2);
  simclr::test::run_ranks(2, [&](Communicator& c, int r) {
    const int64_t s = r == 0 ? 0 : 4, e = r == 0 ? 4 : N;
    got[r] = bn_run(x.slice0(s, e).clone(), w.slice0(s, e).clone(), g, b, &c, true);
  });
  // float: the sums run over other partitions of the rows (a few ulp of 1e-7 over ~100 terms)
  CHECK(rel_err(got[1].y, ref.y.slice0(4, N)) < 1e-5);
  CHECK(rel_err(got[1].dx, ref.dx.slice0(4, N)) < 1e-4);
}

// ================================================================ NT-Xent with negatives from every rank

TEST_CASE("ntxent with gathered negatives equals one process over the concatenated batch", "[dist][ntxent]") {
  for (int R : {2, 3}) {
    INFO("ranks " << R);
    const int64_t B = 4, D = 6, N = R * B, V = 2 * N;
    const double tau = 0.3;
    Tensor zg = rand_tensor({V, D}, 31 + R);  // one process's z for the R·B images: [view 1; view 2]
    Tensor zref = zg.clone().set_requires_grad();
    Tensor lref = ntxent(zref, tau);
    backward(lref);
    const double loss_ref = lref.item();
    std::vector<double> loss(R);
    std::vector<Tensor> grad(R);
    simclr::test::run_ranks(R, [&](Communicator& c, int r) {
      // this rank's z: view 1 then view 2 of its images [rB, rB + B)
      Tensor z = Tensor::empty({2 * B, D}, DType::f64);
      z.slice0(0, B).copy_from(zg.slice0(r * B, r * B + B));
      z.slice0(B, 2 * B).copy_from(zg.slice0(N + r * B, N + r * B + B));
      z.set_requires_grad();
      Tensor l = ntxent(z, tau, &c);
      loss[r] = l.item();
      backward(l);  // no collective in backward: each rank's gradient is complete for its rows
      grad[r] = z.grad();
    });
    for (int r = 0; r < R; r++) {
      CHECK(loss[r] == Approx(loss_ref).epsilon(1e-14));  // the global loss on every rank
      Tensor want = Tensor::empty({2 * B, D}, DType::f64);
      want.slice0(0, B).copy_from(zref.grad().slice0(r * B, r * B + B));
      want.slice0(B, 2 * B).copy_from(zref.grad().slice0(N + r * B, N + r * B + B));
      CHECK(rel_err(grad[r], want) < 1e-13);
    }
    // the same rows without the other ranks' negatives give another loss: the test can fail
    Tensor z0 = Tensor::empty({2 * B, D}, DType::f64);
    z0.slice0(0, B).copy_from(zg.slice0(0, B));
    z0.slice0(B, 2 * B).copy_from(zg.slice0(N, N + B));
    CHECK(std::abs(ntxent(z0, tau).item() - loss_ref) > 1e-3);
  }
}

// ================================================================ the loader's shards

namespace {
class TinyImages : public Dataset {
 public:
  int64_t size() const override { return 37; }
  int channels() const override { return 1; }
  int height() const override { return 9; }
  int width() const override { return 9; }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::string describe() const override { return "tiny"; }
  Sample get(int64_t i) const override {
    Sample s;
    s.image = Image(9, 9, 1);
    for (size_t k = 0; k < s.image.pixels.size(); k++) s.image.pixels[k] = static_cast<uint8_t>((k * 7 + i * 31) % 256);
    s.label = i % 2;
    return s;
  }

 private:
  std::vector<std::string> names_ = {"a", "b"};
};
}  // namespace

TEST_CASE("loader shards: R ranks see together exactly one process's batches, in rank order", "[dist][loader]") {
  auto ds = std::make_shared<TinyImages>();
  DataConfig cfg;
  cfg.dataset = "flat-folder";
  cfg.channels = 1;
  cfg.image_size = 6;
  cfg.mean = {0.5f};
  cfg.std = {0.25f};
  const int64_t bs = 12;  // global batch; 37 images: 3 batches per epoch (drop_last)
  LoaderOptions one = train_loader_options(cfg, bs, 5);
  one.workers = 0;
  Loader whole(ds, cfg, one);
  for (int R : {2, 3, 4}) {
    INFO("ranks " << R);
    std::vector<std::unique_ptr<Loader>> shards;
    for (int r = 0; r < R; r++) {
      LoaderOptions o = one;
      o.workers = r % 2;  // workers or not: the same batches
      o.shard_rank = r;
      o.shard_count = R;
      shards.push_back(std::make_unique<Loader>(ds, cfg, o));
      CHECK(shards.back()->batches_per_epoch() == whole.batches_per_epoch());  // the global count
    }
    const int64_t B = bs / R;
    for (int64_t e = 0; e < 2; e++)
      for (int64_t b = 0; b < whole.batches_per_epoch(); b++) {
        const Batch w = whole.build(e, b);
        const int64_t row = w.views.numel() / w.views.size(0);  // floats per view
        for (int r = 0; r < R; r++) {
          const Batch s = shards[r]->next();
          REQUIRE(s.size() == B);
          CHECK(s.epoch == e);
          CHECK(s.index == b);
          bool same = true;
          for (int64_t i = 0; i < B; i++) {
            same = same && s.indices[i] == w.indices[r * B + i];
            for (int v = 0; v < 2; v++)  // view v of image r·B + i: row v·N + r·B + i of the whole batch
              same = same && std::memcmp(s.views.data<float>() + (v * B + i) * row,
                                         w.views.data<float>() + (v * bs + r * B + i) * row, row * 4) == 0;
          }
          CHECK(same);
        }
      }
  }
  LoaderOptions bad = one;
  bad.shard_count = 5;  // 12 images do not split over 5 ranks
  bad.shard_rank = 1;
  CHECK_THROWS_WITH(Loader(ds, cfg, bad), Catch::Contains("does not split evenly over 5 ranks"));
  bad.shard_count = 2;
  bad.drop_last = false;
  CHECK_THROWS_WITH(Loader(ds, cfg, bad), Catch::Contains("needs drop_last"));
}

// ================================================================ the config key

TEST_CASE("config: model.bn is global (default) or local, and may change on resume", "[dist][config]") {
  json j = quickstart_config();
  RunConfig d = parse_run_config(j);
  CHECK(d.model.global_bn);
  CHECK(run_config_to_json(d)["model"]["bn"] == "global");
  j["model"]["bn"] = "local";
  RunConfig l = parse_run_config(j);
  CHECK_FALSE(l.model.global_bn);
  CHECK(run_config_to_json(l)["model"]["bn"] == "local");
  CHECK(config_mismatch(run_config_to_json(d), run_config_to_json(l)).empty());
  json old = run_config_to_json(d);  // a checkpoint from before the key
  old["model"].erase("bn");
  CHECK(config_mismatch(old, run_config_to_json(l)).empty());
  j["model"]["bn"] = "sync";
  CHECK_THROWS_WITH(parse_run_config(j), Catch::Contains("'model.bn'") && Catch::Contains("global, local"));
  // the global batch is part of the config: a resume with another one is refused by the config check
  json a = run_config_to_json(d), b = a;
  b["train"]["batch"] = 128;
  CHECK_THAT(config_mismatch(a, b), Catch::Contains("train.batch"));
}
