// engine/launch_env.h - which process of a multi-process job this is: rank,
// world size and local rank (the GPU index on its node) from the variables
// the launcher sets. Pure functions over an environment map (unit-tested with
// each launcher's variables, tests/test_launch_env.cpp); process_launch_env()
// reads the real environment.
//
// Launchers, in the order they are tried (the first whose variables are
// present wins, innermost first: mpirun under SLURM runs its daemons as srun
// tasks, so its processes also see the daemons' SLURM_PROCID; a partial set
// is an error, not a silent single process):
//   OpenMPI (mpirun):  OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   PMI (MPICH/Hydra,  PMI_RANK, PMI_SIZE, and the local rank from MPI_LOCALRANKID or
//        Intel MPI):   PMI_LOCAL_RANK when present (else 0: one process per node assumed)
//   SLURM (srun):      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
//   none:              rank 0 of 1 (a single process)
// SLURM's variables are also set in the batch script itself (one task of
// the allocation, not a step): SLURM_PROCID is only trusted together with
// SLURM_STEP_ID, i.e. inside an srun step; without a step it is a single
// process. SIMCLR_LAUNCHER=none forces a single process.
//
// Checks (each an error naming the variable): every value an integer,
// size >= 1, 0 <= rank < size, 0 <= local_rank <= rank, rank and size set
// together.
#pragma once
#include <map>
#include <string>

namespace simclr {

struct LaunchEnv {
  int rank = 0;
  int size = 1;
  int local_rank = 0;               // the GPU of this process on its node
  std::string launcher = "none";    // "openmpi", "slurm", "pmi" or "none"
  bool multi() const { return size > 1; }
  std::string describe() const;     // "rank 1 of 4 (local rank 1, from openmpi)"
};

using EnvMap = std::map<std::string, std::string>;

// The launch from `env`; throws simclr::Error naming the variable on a
// missing, non-integer, out-of-range or inconsistent value.
LaunchEnv launch_env_from(const EnvMap& env);

// The variables launch_env_from reads, taken from this process's environment.
EnvMap launcher_variables();
// launch_env_from(launcher_variables()).
LaunchEnv process_launch_env();

}  // namespace simclr
