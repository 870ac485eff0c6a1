// tools/export_encoder.cpp - export_encoder: the trained encoder out of a
// checkpoint as torchvision-named safetensors (or a raw binary) plus a JSON
// manifest. The export lives in train/export.h, the flags in
// tools/cli/export_cli.h; `export_encoder --help`
// prints the usage and docs/export.md shows how to load the result.
#include <cstdio>
#include <exception>

#include "engine/check.h"
#include "tools/cli/export_cli.h"

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
