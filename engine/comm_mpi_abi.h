/* engine/comm_mpi_abi.h - the C interface between the engine and its MPI
 * plugin (engine/mpi/simclr_mpi_plugin.c, built as libsimclr_mpi.so when
 * CMake finds MPI). The engine never links libmpi: engine/comm_mpi.cpp loads
 * the plugin with dlopen only when the world has more than one rank, so a
 * single process needs no MPI library at run time.
 *
 * Every function returns 0 on success, else writes a message (the MPI call,
 * MPI's error string) into err[errlen] and returns the MPI error code. Counts
 * are elements of `dtype` (all_reduce_sum) or bytes (the rest); the plugin
 * splits counts beyond MPI's int range. MPI_COMM_WORLD has the
 * MPI_ERRORS_RETURN handler, so errors come back here instead of aborting. */
#ifndef SIMCLR_COMM_MPI_ABI_H
#define SIMCLR_COMM_MPI_ABI_H
#ifdef __cplusplus
extern "C" {
#endif

#define SIMCLR_MPI_ABI_VERSION 1
enum { SIMCLR_MPI_F32 = 0, SIMCLR_MPI_F64 = 1, SIMCLR_MPI_I32 = 2, SIMCLR_MPI_I64 = 3 };

struct simclr_mpi_api {
  int version; /* SIMCLR_MPI_ABI_VERSION */
  int (*init)(int* rank, int* size, char* err, int errlen);
  int (*finalize)(char* err, int errlen);
  int (*all_reduce_sum)(void* buf, long long count, int dtype, char* err, int errlen);
  int (*all_gather)(void* out, const void* in, long long bytes, char* err, int errlen);
  int (*broadcast)(void* buf, long long bytes, int root, char* err, int errlen);
  int (*barrier)(char* err, int errlen);
  void (*abort_all)(int code); /* MPI_Abort(MPI_COMM_WORLD, code) */
  const char* (*library_version)(void);
};

/* The plugin's one exported symbol. */
const struct simclr_mpi_api* simclr_mpi_plugin_api(void);

#ifdef __cplusplus
}
#endif
#endif
