// tools/export_encoder.cpp - export_encoder: the trained encoder out of a
// checkpoint as torchvision-named safetensors (or a raw binary) plus a JSON
// manifest. All logic lives in engine/export.{h,cpp}; `export_encoder --help`
// prints the usage and docs/export.md shows how to load the result.
#include <cstdio>
#include <exception>

#include "engine/check.h"
#include "train/export.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "%s", simclr::kExportUsage);
    return 1;
  }
  try {
    return simclr::export_encoder_main(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
