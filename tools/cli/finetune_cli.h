// tools/cli/finetune_cli.h - the `simclr finetune` subcommand.
#pragma once

namespace simclr {

// argv[0] is "finetune".
//   simclr finetune <checkpoint | run dir | encoder.safetensors> [--fraction 0.01] [--subset-file F]
//                   [--random-init] [--epochs N] [--batch 256] [--lr X] [--seed S] [--out DIR]
//                   [--data PATH [--dataset KIND]] [--set key.path=value ...]
// Returns the process exit code; throws simclr::Error on bad input.
int cmd_finetune(int argc, char** argv);

}  // namespace simclr
