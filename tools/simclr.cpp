// tools/simclr.cpp - the simclr command (placeholder main until the
// end-to-end issue lands its subcommands).
#include <cstdio>
#include <string>

#include "data/preview.h"
#include "engine/check.h"
#include "engine/device.h"

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::string(argv[1]) == "preview") return simclr::cmd_preview(argc - 1, argv + 1);
    std::printf("simclr %s (commit %s)\nBLAS: %s\n", SIMCLR_VERSION, SIMCLR_GIT_COMMIT, simclr::blas_info().c_str());
    std::printf("CUDA: %s\n", simclr::cuda_available() ? "available" : simclr::cuda_unavailable_reason().c_str());
    std::printf("The training job is not built yet: build finished.\n");
  } catch (const simclr::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
