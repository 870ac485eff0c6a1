// tools/cli/process_env.cpp - see process_env.h.
#include "tools/cli/process_env.h"

#include <cblas.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace simclr {

namespace {
// OpenBLAS would run its Haswell/Zen (AVX2) kernels on a CPU that has AVX-512.
bool blas_avx512_upgrade() {
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (forced != nullptr && strcasecmp(forced, "haswell") != 0 && strcasecmp(forced, "zen") != 0) return false;
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
    return false;
  const std::string core = openblas_get_corename();
  return strcasecmp(core.c_str(), "haswell") == 0 || strcasecmp(core.c_str(), "zen") == 0;
}
}  // namespace

void tune_process_environment(char** argv) {
  if (std::getenv("SIMCLR_KEEP_ENV") != nullptr || std::getenv("SIMCLR_ENV_TUNED") != nullptr) return;
  bool changed = false;
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    changed = true;
  }
  if (blas_avx512_upgrade()) {
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    changed = true;
  }
  if (!changed) return;
  setenv("SIMCLR_ENV_TUNED", "1", 1);  // once only
  execv("/proc/self/exe", argv);       // returns only on failure: carry on as we are
}

}  // namespace simclr
