// tools/cli/report_cli.h - the `simclr report` subcommand.
#pragma once
#include <string>

namespace simclr {

// argv[0] is "report".
//   simclr report RUN_DIR [--out DIR]
// Runs tools/report/simclr_report.py (matplotlib plots and report.md) with
// /usr/bin/python3 (or $SIMCLR_PYTHON). Returns the script's exit code
// (0 written, 2 bad run directory, 3 matplotlib missing); throws
// simclr::Error when the script or the interpreter cannot be found.
int cmd_report(int argc, char** argv);

// The same for the quickstart's last step: writes the report of run_dir and
// returns the path of report.md, or "" with *why set when it could not
// (matplotlib missing, ...); never throws.
std::string write_report_quietly(const std::string& run_dir, std::string* why);

}  // namespace simclr
