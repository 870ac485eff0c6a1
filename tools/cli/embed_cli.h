// tools/cli/embed_cli.h - the `simclr embed` command line over train/embed.h.
//
//   simclr embed --weights encoder.safetensors|encoder.bin|CHECKPOINT --data PATH
//                --out features.npy [--labels-out labels.npy] [--batch 256]
//                [--threads N] [--strict]
#pragma once
#include "train/embed.h"

namespace simclr {

extern const char* kEmbedUsage;

// Parses argv (argv[0] = "embed") into *opt. Returns false when --help was
// asked for (the usage is printed); usage errors throw simclr::Error.
bool parse_embed_args(int argc, char** argv, EmbedOptions* opt);

// The embed subcommand: parse_embed_args, then embed(). Returns the exit status.
int cmd_embed(int argc, char** argv);

}  // namespace simclr
