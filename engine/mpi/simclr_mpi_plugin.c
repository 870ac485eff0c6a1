/* engine/mpi/simclr_mpi_plugin.c - the MPI plugin (libsimclr_mpi.so): the
 * functions of engine/comm_mpi_abi.h over MPI_COMM_WORLD. Plain C against
 * the MPI standard (built and tested with Debian's OpenMPI). Loaded by
 * engine/comm_mpi.cpp; it keeps no state beyond MPI's own. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "engine/comm_mpi_abi.h"

static int fail(int rc, const char* call, char* err, int errlen) {
  char msg[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) {
    snprintf(msg, sizeof msg, "MPI error code %d", rc);
  } else {
    msg[len] = '\0';
  }
  if (err != NULL && errlen > 0) snprintf(err, (size_t)errlen, "%s failed: %s (MPI error %d)", call, msg, rc);
  return rc == MPI_SUCCESS ? -1 : rc;
}

static int p_init(int* rank, int* size, char* err, int errlen) {
  int inited = 0, provided = 0, rc;
  MPI_Initialized(&inited);
  if (!inited) {
    /* FUNNELED: only the thread that called init makes MPI calls (the trainer's). */
    rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return fail(rc, "MPI_Init_thread", err, errlen);
  }
  rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS) return fail(rc, "MPI_Comm_set_errhandler", err, errlen);
  if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS) return fail(rc, "MPI_Comm_rank", err, errlen);
  if ((rc = MPI_Comm_size(MPI_COMM_WORLD, size)) != MPI_SUCCESS) return fail(rc, "MPI_Comm_size", err, errlen);
  return 0;
}

static int p_finalize(char* err, int errlen) {
  int fin = 0, rc;
  MPI_Finalized(&fin);
  if (fin) return 0;
  rc = MPI_Finalize();
  return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI_Finalize", err, errlen);
}

static MPI_Datatype mpi_type(int dtype, int* elem) {
  switch (dtype) {
    case SIMCLR_MPI_F32: *elem = 4; return MPI_FLOAT;
    case SIMCLR_MPI_F64: *elem = 8; return MPI_DOUBLE;
    case SIMCLR_MPI_I32: *elem = 4; return MPI_INT32_T;
    case SIMCLR_MPI_I64: *elem = 8; return MPI_INT64_T;
    default: *elem = 0; return MPI_DATATYPE_NULL;
  }
}

#define CHUNK ((long long)1 << 30) /* elements or bytes per MPI call: within int */

static int p_all_reduce_sum(void* buf, long long count, int dtype, char* err, int errlen) {
  int elem = 0;
  MPI_Datatype t = mpi_type(dtype, &elem);
  if (t == MPI_DATATYPE_NULL) {
    snprintf(err, (size_t)errlen, "MPI_Allreduce: unsupported element type %d", dtype);
    return -1;
  }
  for (long long off = 0; off < count; off += CHUNK) {
    const long long n = count - off < CHUNK ? count - off : CHUNK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, (char*)buf + off * elem, (int)n, t, MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return fail(rc, "MPI_Allreduce", err, errlen);
  }
  return 0;
}

static int p_all_gather(void* out, const void* in, long long bytes, char* err, int errlen) {
  if (bytes > INT_MAX) {
    snprintf(err, (size_t)errlen, "MPI_Allgather: %lld bytes per rank exceed MPI's int count", bytes);
    return -1;
  }
  int rc = MPI_Allgather(in, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI_Allgather", err, errlen);
}

static int p_broadcast(void* buf, long long bytes, int root, char* err, int errlen) {
  for (long long off = 0; off < bytes; off += CHUNK) {
    const long long n = bytes - off < CHUNK ? bytes - off : CHUNK;
    int rc = MPI_Bcast((char*)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return fail(rc, "MPI_Bcast", err, errlen);
  }
  return 0;
}

static int p_barrier(char* err, int errlen) {
  int rc = MPI_Barrier(MPI_COMM_WORLD);
  return rc == MPI_SUCCESS ? 0 : fail(rc, "MPI_Barrier", err, errlen);
}

static void p_abort_all(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static const char* p_library_version(void) {
  static char v[MPI_MAX_LIBRARY_VERSION_STRING + 1];
  int len = 0;
  if (MPI_Get_library_version(v, &len) != MPI_SUCCESS) return "unknown MPI";
  v[len] = '\0';
  char* nl = strchr(v, '\n');
  if (nl != NULL) *nl = '\0';
  return v;
}

const struct simclr_mpi_api* simclr_mpi_plugin_api(void) {
  static const struct simclr_mpi_api api = {SIMCLR_MPI_ABI_VERSION, p_init,    p_finalize,   p_all_reduce_sum,
                                            p_all_gather,           p_broadcast, p_barrier,  p_abort_all,
                                            p_library_version};
  return &api;
}
