// tools/cli/preview_cli.h - the `simclr preview` subcommand's flags.
#pragma once

namespace simclr {

// argv[0] is "preview".
//   simclr preview run.json --out grid.png [--n 8] [--seed 0] [--split train|test]
//                  [--set data.key=value ...]
// Returns the process exit code; throws simclr::Error on bad input.
int cmd_preview(int argc, char** argv);

}  // namespace simclr
