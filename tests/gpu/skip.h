// tests/gpu/skip.h - how a GPU test leaves when there is no device: it prints
// "SKIPPED: <reason>" (tests/CMakeLists.txt makes ctest report that line as
// skipped, never as passed) and returns.
#pragma once
#include <cstdio>

#include "engine/device.h"

#define SKIP_WITHOUT_GPU()                                                      \
  do {                                                                          \
    if (!simclr::cuda_available()) {                                            \
      std::printf("SKIPPED: %s\n", simclr::cuda_unavailable_reason().c_str()); \
      return;                                                                   \
    }                                                                           \
  } while (0)
