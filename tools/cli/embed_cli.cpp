// tools/cli/embed_cli.cpp - see embed_cli.h.
#include "tools/cli/embed_cli.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/check.h"

namespace simclr {

const char* kEmbedUsage =
    "usage: simclr embed --weights FILE --data PATH --out features.npy [options]\n"
    "\n"
    "Encoder features h (after global average pooling) of every image at PATH, with\n"
    "the preprocessing the encoder was trained with (no augmentation; centred crop,\n"
    "resize to the trained image size, x/255, per-channel mean/std), as a float32\n"
    ".npy [N, F] in dataset order.\n"
    "\n"
    "  --weights FILE        an exported encoder (.safetensors, or a raw export's .bin\n"
    "                        or .json) or a simclr checkpoint\n"
    "  --data PATH           a folder with class subfolders (labels = classes), a folder\n"
    "                        of images, a folder of CIFAR .bin batches, an IDX images\n"
    "                        file (labels from the matching *labels-idx1-ubyte beside it),\n"
    "                        or a packed .npy of uint8 images [N,H,W(,C)]\n"
    "  --out FILE            features .npy (written atomically)\n"
    "  --labels-out FILE     also the labels, int64 .npy [N] (-1 where unlabelled)\n"
    "  --batch N             images per forward pass (default 256)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "  --strict              an undecodable image is an error (default: skipped with a\n"
    "                        warning and replaced by the next image, as in training)\n"
    "  -h, --help            this text\n"
    "\n"
    "Runs on the CPU: the CUDA backend does not cover the ResNet forward yet.\n";

bool parse_embed_args(int argc, char** argv, EmbedOptions* opt) {
  auto parse_int = [](const std::string& flag, const std::string& v, int64_t lo) {
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    SIMCLR_CHECK(!v.empty() && end && *end == 0 && x >= lo, "embed: ", flag, " expects an integer >= ", lo,
                 ", got '", v, "'");
    return static_cast<int64_t>(x);
  };
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      SIMCLR_CHECK(i + 1 < argc, "embed: ", a, " needs a value (see simclr embed --help)");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::printf("%s", kEmbedUsage);
      return false;
    } else if (a == "--weights") {
      opt->weights = value();
    } else if (a == "--data") {
      opt->data = value();
    } else if (a == "--out") {
      opt->out = value();
    } else if (a == "--labels-out") {
      opt->labels_out = value();
    } else if (a == "--batch") {
      opt->batch = parse_int(a, value(), 1);
    } else if (a == "--threads") {
      opt->threads = static_cast<int>(parse_int(a, value(), 0));
    } else if (a == "--strict") {
      opt->strict = true;
    } else {
      fail("embed: unexpected argument '", a, "' (see simclr embed --help)");
    }
  }
  SIMCLR_CHECK(!opt->weights.empty(), "embed: --weights FILE is required (see simclr embed --help)");
  SIMCLR_CHECK(!opt->data.empty(), "embed: --data PATH is required (see simclr embed --help)");
  SIMCLR_CHECK(!opt->out.empty(), "embed: --out FILE is required (see simclr embed --help)");
  return true;
}

int cmd_embed(int argc, char** argv) {
  EmbedOptions opt;
  if (parse_embed_args(argc, argv, &opt)) embed(opt);
  return 0;
}

}  // namespace simclr
