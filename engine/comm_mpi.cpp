// engine/comm_mpi.cpp - the MPI communicator (engine/comm.h) and
// make_communicator().
//
// MPI is reached through a plugin, libsimclr_mpi.so (engine/mpi/
// simclr_mpi_plugin.c, engine/comm_mpi_abi.h), loaded with dlopen only when
// the world has more than one rank: a single process needs no MPI library,
// and a build without MPI still trains in one process (make_communicator then
// refuses a larger world, naming why). The plugin is looked up at
// $SIMCLR_MPI_PLUGIN, next to the executable, then in the build directory.
//
// Errors: MPI_COMM_WORLD returns errors (MPI_ERRORS_RETURN) and every call
// is checked: a failure throws "MPI_Allreduce failed on rank 1 of 4 (the
// gradient, f32[11000000]): ...". A peer that dies is seen by the launcher
// (mpirun and srun end the job when a rank exits non-zero or is killed:
// within a second or two, measured with mpirun -np 2). Where nothing ends the
// job (a peer stuck, a launcher that waits), a watchdog thread ends this
// process when a collective has not completed within the timeout
// (SIMCLR_COMM_TIMEOUT seconds, default 600; 0 = none), printing the call,
// the rank and the time waited, so no rank hangs forever.
//
// Tensors on a device other than the CPU are staged through host memory
// (correct, not fast: NCCL is the GPU's communicator).
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "engine/check.h"
#include "engine/comm.h"
#include "engine/comm_mpi_abi.h"

#ifndef SIMCLR_MPI_PLUGIN_DEFAULT
#define SIMCLR_MPI_PLUGIN_DEFAULT ""
#endif

namespace simclr {

namespace {

namespace fs = std::filesystem;

constexpr const char* kPluginName = "libsimclr_mpi.so";

std::vector<std::string> plugin_candidates() {
  std::vector<std::string> c;
  if (const char* e = std::getenv("SIMCLR_MPI_PLUGIN"); e != nullptr && *e) c.push_back(e);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) c.push_back((exe.parent_path() / kPluginName).string());
  if (*SIMCLR_MPI_PLUGIN_DEFAULT) c.push_back(SIMCLR_MPI_PLUGIN_DEFAULT);
  return c;
}

// The plugin's function table (loaded once per process, never unloaded), or
// null with *why set.
const simclr_mpi_api* load_plugin(std::string* why) {
  static std::mutex mu;
  static const simclr_mpi_api* api = nullptr;
  static std::string err;
  std::lock_guard<std::mutex> lock(mu);
  if (api != nullptr || !err.empty()) {
    if (why) *why = err;
    return api;
  }
  std::string tried;
  for (const std::string& path : plugin_candidates()) {
    if (!fs::exists(path)) {
      tried += (tried.empty() ? "" : ", ") + path + " (absent)";
      continue;
    }
    // RTLD_GLOBAL: OpenMPI dlopens its own components, which need libmpi's symbols.
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (h == nullptr) {
      tried += (tried.empty() ? "" : ", ") + path + " (" + dlerror() + ")";
      continue;
    }
    auto fn = reinterpret_cast<const simclr_mpi_api* (*)()>(dlsym(h, "simclr_mpi_plugin_api"));
    const simclr_mpi_api* a = fn != nullptr ? fn() : nullptr;
    if (a == nullptr || a->version != SIMCLR_MPI_ABI_VERSION) {
      tried += (tried.empty() ? "" : ", ") + path + " (not a simclr MPI plugin of ABI version " +
               std::to_string(SIMCLR_MPI_ABI_VERSION) + ")";
      continue;
    }
    api = a;
    return api;
  }
  err = "the MPI plugin " + std::string(kPluginName) + " was not found or did not load: " +
        (tried.empty() ? std::string("no candidate path") : tried) +
        (*SIMCLR_MPI_PLUGIN_DEFAULT ? "" : "; this build has no MPI (CMake did not find it: install libopenmpi-dev)");
  if (why) *why = err;
  return nullptr;
}

int mpi_dtype(DType dt) {
  switch (dt) {
    case DType::f32: return SIMCLR_MPI_F32;
    case DType::f64: return SIMCLR_MPI_F64;
    case DType::i32: return SIMCLR_MPI_I32;
    case DType::i64: return SIMCLR_MPI_I64;
    default: return -1;
  }
}

double env_timeout() {
  const char* e = std::getenv("SIMCLR_COMM_TIMEOUT");
  if (e == nullptr || !*e) return 600;
  char* end = nullptr;
  const double v = std::strtod(e, &end);
  SIMCLR_CHECK(end != e && *end == '\0' && v >= 0, "SIMCLR_COMM_TIMEOUT=\"", e,
               "\" must be a number of seconds >= 0 (0: no limit)");
  return v;
}

bool g_finalized = false;  // MPI cannot be initialised again in this process

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const simclr_mpi_api* api, const LaunchEnv& env) : api_(api), timeout_(env_timeout()) {
    SIMCLR_CHECK(!g_finalized, "MPI was already finalized in this process: one multi-process run per process");
    char err[512] = {0};
    const int rc = api_->init(&rank_, &size_, err, sizeof err);
    SIMCLR_CHECK(rc == 0, err, " (", env.describe(), ")");
    SIMCLR_CHECK(rank_ == env.rank && size_ == env.size, "MPI says rank ", rank_, " of ", size_, " but the launcher's ",
                 "environment says ", env.describe(), ": the process was not started by the launcher it names");
    watchdog_ = std::thread([this] { watch(); });
  }
  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    // Unwinding from an error: no MPI_Finalize (it waits for the peers, which may be
    // inside a collective); the process exits non-zero and the launcher ends the job.
    if (std::uncaught_exceptions() > 0) return;
    char err[512] = {0};
    if (api_->finalize(err, sizeof err) != 0) std::fprintf(stderr, "simclr: rank %d: %s\n", rank_, err);
    g_finalized = true;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  double set_timeout(double seconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    const double old = timeout_;
    timeout_ = seconds;
    return old;
  }

  void all_reduce_sum(Tensor& t) override {
    const int dt = mpi_dtype(t.dtype());
    SIMCLR_CHECK(dt >= 0, "MPI all_reduce_sum on rank ", rank_, ": unsupported dtype of ", t.describe(),
                 " (f32, f64, i32, i64)");
    Staged s(t);
    call("MPI_Allreduce", t,
         [&](char* err, int n) { return api_->all_reduce_sum(s.host.data_ptr(), t.numel(), dt, err, n); });
    s.back(t);
  }

  void all_gather(Tensor& out, const Tensor& in) override {
    SIMCLR_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * size_, "MPI all_gather on rank ", rank_,
                 ": out ", out.describe(), " must hold ", size_, " x in ", in.describe());
    Staged so(out), si(in);
    call("MPI_Allgather", in, [&](char* err, int n) {
      return api_->all_gather(so.host.data_ptr(), si.host.data_ptr(), static_cast<long long>(in.nbytes()), err, n);
    });
    so.back(out);
  }

  void broadcast(Tensor& t, int root) override {
    SIMCLR_CHECK(root >= 0 && root < size_, "MPI broadcast: root ", root, " is not a rank of ", size_);
    Staged s(t);
    call("MPI_Bcast", t, [&](char* err, int n) {
      return api_->broadcast(s.host.data_ptr(), static_cast<long long>(t.nbytes()), root, err, n);
    });
    s.back(t);
  }

  void barrier() override {
    call("MPI_Barrier", Tensor(), [&](char* err, int n) { return api_->barrier(err, n); });
  }

 private:
  // A host copy of a device tensor (the tensor itself on the CPU).
  struct Staged {
    Tensor host;
    bool copied = false;
    explicit Staged(const Tensor& t)
        : host(t.device().is_cpu() ? t : t.to(Device::cpu())), copied(!t.device().is_cpu()) {}
    void back(Tensor& t) {
      if (copied) t.copy_from(host);
    }
  };

  template <class F>
  void call(const char* name, const Tensor& t, F&& f) {
    const std::string what = t.defined() ? t.describe() : std::string();
    {
      std::lock_guard<std::mutex> lock(mu_);
      call_ = name;
      what_ = what;
      started_ = std::chrono::steady_clock::now();
      busy_ = true;
    }
    cv_.notify_all();
    char err[512] = {0};
    const int rc = f(err, static_cast<int>(sizeof err));
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
    }
    SIMCLR_CHECK(rc == 0, err, " on rank ", rank_, " of ", size_, what.empty() ? "" : " (", what,
                 what.empty() ? "" : ")");
  }

  void watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      if (stop_ || !busy_ || timeout_ <= 0) continue;
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      if (waited < timeout_) continue;
      std::fprintf(stderr,
                   "simclr: rank %d of %d: %s%s%s%s has not completed after %.0f s (SIMCLR_COMM_TIMEOUT=%g): a peer "
                   "rank has died or is stuck; ending this process\n",
                   rank_, size_, call_, what_.empty() ? "" : " (", what_.c_str(), what_.empty() ? "" : ")", waited,
                   timeout_);
      std::fflush(stderr);
      std::_Exit(70);
    }
  }

  const simclr_mpi_api* api_;
  int rank_ = 0, size_ = 1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread watchdog_;
  bool stop_ = false, busy_ = false;
  double timeout_;
  const char* call_ = "";
  std::string what_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

void Communicator::broadcast(Tensor& t, int root) {
  fail("broadcast (", t.describe(), " from rank ", root, ") is not implemented by the ", backend(), " communicator");
}
void Communicator::barrier() { fail("barrier is not implemented by the ", backend(), " communicator"); }

#ifndef SIMCLR_WITH_CUDA
bool nccl_built() { return false; }
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator>, int) {
  fail("NCCL communicator: this build has no CUDA backend (configure with the CUDA toolkit for NCCL)");
}
#endif

bool mpi_plugin_available(std::string* why) { return load_plugin(why) != nullptr; }

std::unique_ptr<Communicator> make_communicator(const LaunchEnv& env) {
  if (env.size <= 1) return std::make_unique<LocalCommunicator>();
  std::string why;
  const simclr_mpi_api* api = load_plugin(&why);
  SIMCLR_CHECK(api != nullptr, "this process is ", env.describe(), " but ", why,
               " (a single process needs no MPI: run without the launcher, or set SIMCLR_LAUNCHER=none)");
  return std::make_unique<MpiCommunicator>(api, env);
}

}  // namespace simclr
