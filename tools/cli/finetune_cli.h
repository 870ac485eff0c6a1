// tools/cli/finetune_cli.h - the `simclr finetune` subcommand.
#pragma once
#include <string>

#include "engine/json_config.h"

namespace simclr {

// Transfer (`simclr eval` and `simclr finetune`): points the config's data
// section at another labelled dataset. data: its (train) path; dataset: its
// kind, or "" to detect it (a folder of class folders: image-folder, *.bin
// batches: cifar10, *-ubyte[.gz] files: fashion-mnist); test_data: the
// image-folder's test root (else the kind's own test files). The pretraining
// subset is dropped. Nothing happens when data is empty.
void apply_transfer_data(json& root, const std::string& data, const std::string& dataset,
                         const std::string& test_data);

// argv[0] is "finetune".
//   simclr finetune <checkpoint | run dir | encoder.safetensors> [--fraction 0.01] [--subset-file F]
//                   [--random-init] [--epochs N] [--batch 256] [--lr X] [--seed S] [--out DIR]
//                   [--data PATH [--dataset KIND] [--test-data PATH]] [--set key.path=value ...]
// Returns the process exit code; throws simclr::Error on bad input.
int cmd_finetune(int argc, char** argv);

}  // namespace simclr
