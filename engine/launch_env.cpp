// engine/launch_env.cpp - see launch_env.h.
#include "engine/launch_env.h"

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "engine/check.h"

namespace simclr {

namespace {

const char* const kVars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                             "SLURM_PROCID",         "SLURM_NTASKS",         "SLURM_LOCALID",
                             "SLURM_STEP_ID",        "PMI_RANK",             "PMI_SIZE",
                             "MPI_LOCALRANKID",      "PMI_LOCAL_RANK",       "SIMCLR_LAUNCHER"};

std::optional<std::string> get(const EnvMap& env, const std::string& k) {
  auto it = env.find(k);
  if (it == env.end()) return std::nullopt;
  return it->second;
}

int to_int(const std::string& var, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  SIMCLR_CHECK(!v.empty() && end != nullptr && *end == '\0' && errno == 0 && x >= INT32_MIN && x <= INT32_MAX,
               "launcher environment: ", var, "=\"", v, "\" is not an integer");
  return static_cast<int>(x);
}

// One launcher's triple; nullopt when none of its rank/size variables is set.
std::optional<LaunchEnv> read_triple(const EnvMap& env, const char* name, const char* rank_var,
                                     const char* size_var, const char* local_var, const char* local_var2) {
  const auto r = get(env, rank_var), s = get(env, size_var);
  if (!r && !s) return std::nullopt;
  SIMCLR_CHECK(r && s, "launcher environment (", name, "): ", r ? size_var : rank_var, " is missing but ",
               r ? rank_var : size_var, " is set; both or neither");
  LaunchEnv e;
  e.launcher = name;
  e.rank = to_int(rank_var, *r);
  e.size = to_int(size_var, *s);
  std::string lvar;
  if (auto l = get(env, local_var)) {
    e.local_rank = to_int(local_var, *l);
    lvar = local_var;
  } else if (local_var2 != nullptr) {
    if (auto l2 = get(env, local_var2)) {
      e.local_rank = to_int(local_var2, *l2);
      lvar = local_var2;
    }
  }
  SIMCLR_CHECK(e.size >= 1, "launcher environment (", name, "): ", size_var, "=", e.size, " must be >= 1");
  SIMCLR_CHECK(e.rank >= 0 && e.rank < e.size, "launcher environment (", name, "): ", rank_var, "=", e.rank,
               " is outside [0, ", size_var, "=", e.size, ")");
  SIMCLR_CHECK(e.local_rank >= 0 && e.local_rank < e.size, "launcher environment (", name, "): ",
               lvar.empty() ? std::string("the local rank") : lvar, "=", e.local_rank, " is outside [0, ", size_var,
               "=", e.size, ")");
  SIMCLR_CHECK(e.local_rank <= e.rank, "launcher environment (", name, "): local rank ", e.local_rank,
               " (", lvar, ") exceeds the global rank ", e.rank, " (", rank_var, ")");
  return e;
}

}  // namespace

std::string LaunchEnv::describe() const {
  return "rank " + std::to_string(rank) + " of " + std::to_string(size) + " (local rank " +
         std::to_string(local_rank) + ", from " + launcher + ")";
}

LaunchEnv launch_env_from(const EnvMap& env) {
  if (auto f = get(env, "SIMCLR_LAUNCHER")) {
    SIMCLR_CHECK(*f == "none" || *f == "auto", "launcher environment: SIMCLR_LAUNCHER=\"", *f,
                 "\" must be \"none\" (a single process) or \"auto\"");
    if (*f == "none") return LaunchEnv{};
  }
  const std::optional<LaunchEnv> ompi = read_triple(env, "openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                                    "OMPI_COMM_WORLD_LOCAL_RANK", nullptr);
  // SLURM's rank variables are only a task's inside an srun step (the batch script sees them too).
  std::optional<LaunchEnv> slurm;
  const auto step = get(env, "SLURM_STEP_ID");  // numeric in an srun step ("batch"/"extern" or unset otherwise)
  if (step && !step->empty() && step->find_first_not_of("0123456789") == std::string::npos)
    slurm = read_triple(env, "slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr);
  const std::optional<LaunchEnv> pmi =
      read_triple(env, "pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "PMI_LOCAL_RANK");
  // The innermost launcher wins: mpirun started under SLURM runs its daemons as one srun
  // task per node, so its processes also see that step's SLURM_PROCID / SLURM_NTASKS
  // (the node's, not theirs); srun --mpi=pmi2 sets PMI_* equal to SLURM's.
  const std::optional<LaunchEnv>* order[] = {&ompi, &pmi, &slurm};
  for (const std::optional<LaunchEnv>* o : order)
    if (o->has_value()) return **o;
  return LaunchEnv{};
}

EnvMap launcher_variables() {
  EnvMap env;
  for (const char* k : kVars)
    if (const char* v = std::getenv(k)) env[k] = v;
  return env;
}

LaunchEnv process_launch_env() { return launch_env_from(launcher_variables()); }

}  // namespace simclr
