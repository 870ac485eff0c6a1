// tools/cli/export_cli.h - the export_encoder command line over train/export.h.
//
//   export_encoder CHECKPOINT --out FILE [--dtype fp32|bf16|fp16] [--with-head]
//                  [--format safetensors|raw] [--force]
#pragma once
#include "train/export.h"

namespace simclr {

extern const char* kExportUsage;

// Parses argv (argv[0] = program name), exports (export_checkpoint), prints
// a summary. Returns the exit status; usage errors and failures throw
// simclr::Error.
int export_encoder_main(int argc, char** argv);

}  // namespace simclr
