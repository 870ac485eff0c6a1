// tools/cli/export_cli.cpp - see export_cli.h.
#include "tools/cli/export_cli.h"

#include <cstdio>
#include <string>

#include "engine/check.h"

namespace simclr {

const char* kExportUsage =
    "usage: export_encoder CHECKPOINT --out FILE [--dtype fp32|bf16|fp16] [--with-head]\n"
    "                      [--format safetensors|raw] [--force]\n"
    "\n"
    "Exports the encoder of a simclr checkpoint for use outside this program, with\n"
    "torchvision's ResNet parameter names and layouts (conv weights OIHW; BN weight,\n"
    "bias, running_mean, running_var, num_batches_tracked), so that\n"
    "torchvision.models.resnet50().load_state_dict(sd, strict=False) reports only\n"
    "fc.weight and fc.bias missing. A JSON manifest is written beside the output\n"
    "(FILE with its extension replaced by .json): architecture, width, stem, input\n"
    "channels and size, normalisation mean/std, feature dimension, training config and\n"
    "its hash, final loss, evaluation results, engine version and commit, and every\n"
    "tensor's name, dtype and shape. docs/export.md shows how to load both formats.\n"
    "\n"
    "  CHECKPOINT             a checkpoint-*.ckpt file written by simclr train\n"
    "  --out FILE             output file (required), e.g. encoder.safetensors or encoder.bin\n"
    "  --dtype fp32|bf16|fp16 floating-point type of the weights (default fp32);\n"
    "                         num_batches_tracked stays int64\n"
    "  --with-head            also export the projection head, as projection_head.* tensors\n"
    "  --format safetensors   one .safetensors file (default); the manifest is also\n"
    "                         embedded in its __metadata__ (key simclr_manifest)\n"
    "  --format raw           one flat little-endian binary, each tensor at a 64-byte\n"
    "                         aligned offset; the manifest lists offset, bytes, dtype, shape\n"
    "  --force                replace an existing FILE.json that is not an export\n"
    "                         manifest (by default that is refused: it may be a config)\n"
    "  -h, --help             this text\n"
    "\n"
    "Both files are written atomically: a failed export leaves no partial file.\n"
    "Exit status: 0 on success, 1 on any error (the message names the problem).\n";

int export_encoder_main(int argc, char** argv) {
  std::string checkpoint, out;
  ExportOptions opt;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      SIMCLR_CHECK(i + 1 < argc, a, " needs a value (see export_encoder --help)");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::printf("%s", kExportUsage);
      return 0;
    } else if (a == "--out" || a == "-o") {
      out = value();
    } else if (a.rfind("--out=", 0) == 0) {
      out = a.substr(6);
    } else if (a == "--dtype") {
      opt.dtype = export_dtype_from_name(value());
    } else if (a.rfind("--dtype=", 0) == 0) {
      opt.dtype = export_dtype_from_name(a.substr(8));
    } else if (a == "--format") {
      opt.format = value();
    } else if (a.rfind("--format=", 0) == 0) {
      opt.format = a.substr(9);
    } else if (a == "--with-head") {
      opt.with_head = true;
    } else if (a == "--force") {
      opt.force = true;
    } else if (!a.empty() && a[0] == '-') {
      fail("unknown option '", a, "' (see export_encoder --help)");
    } else {
      SIMCLR_CHECK(checkpoint.empty(), "more than one checkpoint given ('", checkpoint, "', '", a,
                   "'; see export_encoder --help)");
      checkpoint = a;
    }
  }
  SIMCLR_CHECK(!checkpoint.empty(), "no checkpoint given\n", kExportUsage);
  SIMCLR_CHECK(!out.empty(), "no output given (--out FILE)\n", kExportUsage);
  SIMCLR_CHECK(opt.format == "safetensors" || opt.format == "raw", "unknown format '", opt.format,
               "' (expected safetensors or raw)");
  ExportResult r = export_checkpoint(checkpoint, out, opt);
  const json& m = r.manifest;
  std::printf("exported %s width %g (%s stem, %lld features) from %s (step %lld)\n",
              m["architecture"].get<std::string>().c_str(), m["model"]["width"].get<double>(),
              m["model"]["stem"].get<std::string>().c_str(), static_cast<long long>(m["feature_dim"].get<int64_t>()),
              checkpoint.c_str(), static_cast<long long>(m["training"]["step"].get<int64_t>()));
  std::printf("  %s: %s, %zu tensors, %s, %.2f MB%s\n", r.weights_path.c_str(), opt.format.c_str(), r.tensors,
              export_dtype_name(opt.dtype), static_cast<double>(r.bytes) / 1e6,
              opt.with_head ? ", with the projection head" : "");
  std::printf("  manifest: %s\n", r.manifest_path.c_str());
  return 0;
}

}  // namespace simclr
