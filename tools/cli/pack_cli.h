// tools/cli/pack_cli.h - `simclr pack` and `simclr info`: the packed dataset
// format's commands (data/packed.h, docs/data.md). All their flag parsing.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/readers.h"

namespace simclr {

// argv[0] is "pack".
//   simclr pack --from <folder|idx file|cifar folder|fashion-mnist folder|packed file> --out data.simclr
//               [--max-side 256] [--threads N] [--channels 1|3] [--dataset KIND] [--split train|test]
//               [--labels FILE] [--subset N] [--strict] [--force]
int cmd_pack(int argc, char** argv);

// argv[0] is "info".   simclr info FILE [--verify]
int cmd_info(int argc, char** argv);

// What `simclr pack --from` reads: the dataset, its kind (recorded in the
// file, for the config defaults) and the input paths the output must not be.
struct PackSource {
  std::shared_ptr<Dataset> ds;
  std::string kind;
  std::vector<std::string> inputs;
};
// kind "" = detect: a folder of *-ubyte files -> fashion-mnist; of CIFAR
// *.bin batches -> cifar10 / cifar100; with class subfolders -> image-folder;
// of images -> flat-folder; a packed file -> packed; another file -> idx
// (labels: `labels`, else the MNIST-named *labels-idx1-ubyte beside it).
// channels 0: 1 for fashion-mnist and idx, the stored count for packed, else 3.
PackSource open_pack_source(const std::string& from, std::string kind, const std::string& split, int channels,
                            bool strict, const std::string& labels);

}  // namespace simclr
