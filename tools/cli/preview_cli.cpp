// tools/cli/preview_cli.cpp - flag parsing of `simclr preview` (data/preview.h draws the grid).
#include "tools/cli/preview_cli.h"

#include <cstdio>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "data/preview.h"
#include "engine/fileio.h"
#include "engine/json_config.h"

namespace simclr {

int cmd_preview(int argc, char** argv) {
  const char* usage =
      "usage: simclr preview run.json --out grid.png [options]\n"
      "  Writes a PNG grid: each row an original image and its two augmented views,\n"
      "  as the training loader builds them from the config's `data` section.\n"
      "options:\n"
      "  --out PATH          output PNG (required)\n"
      "  --n N               number of images (rows), default 8\n"
      "  --seed S            training seed whose first batch is shown, default 0\n"
      "  --split NAME        train or test, default: data.split\n"
      "  --set key=value     config override, e.g. --set data.augment.blur_p=1 (repeatable)\n";
  std::string config_path, out;
  PreviewOptions opt;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      SIMCLR_CHECK(i + 1 < argc, "preview: ", a, " needs a value\n", usage);
      return argv[++i];
    };
    auto to_int = [&](const std::string& v) -> int64_t {
      try {
        size_t pos = 0;
        long long x = std::stoll(v, &pos);
        SIMCLR_CHECK(pos == v.size(), "");
        return x;
      } catch (...) {
        fail("preview: ", a, " expects an integer, got '", v, "'");
      }
    };
    if (a == "--help" || a == "-h") {
      std::printf("%s", usage);
      return 0;
    } else if (a == "--out") {
      out = value();
    } else if (a == "--n") {
      opt.n = static_cast<int>(to_int(value()));
    } else if (a == "--seed") {
      int64_t s = to_int(value());
      SIMCLR_CHECK(s >= 0, "preview: --seed must be >= 0, got ", s);
      opt.seed = static_cast<uint64_t>(s);
    } else if (a == "--split") {
      opt.split = value();
      SIMCLR_CHECK(opt.split == "train" || opt.split == "test", "preview: --split must be train or test, got '",
                   opt.split, "'");
    } else if (a == "--set") {
      overrides.push_back(value());
    } else if (!a.empty() && a[0] == '-') {
      fail("preview: unknown option '", a, "'\n", usage);
    } else {
      SIMCLR_CHECK(config_path.empty(), "preview: more than one config file given ('", config_path, "', '", a, "')");
      config_path = a;
    }
  }
  SIMCLR_CHECK(!config_path.empty(), "preview: no config file given\n", usage);
  SIMCLR_CHECK(!out.empty(), "preview: --out is required\n", usage);
  check_output_path("preview: --out", out, {config_path}, /*replace_existing=*/true);  // never the config it reads
  json root = read_json_file(config_path);
  for (const std::string& o : overrides) apply_override(root, o);
  SIMCLR_CHECK(root.is_object(), "config '", config_path, "' must be a JSON object");
  ConfigObject data(root.contains("data") ? root["data"] : json(), "data");
  DataConfig cfg = parse_data_config(data);
  check_output_path("preview: --out", out, {config_path, cfg.path, cfg.images, cfg.labels, cfg.test_images, cfg.test_labels}, true);
  std::string legend = write_preview(out, cfg, opt);
  std::printf("%swrote %s\n", legend.c_str(), out.c_str());
  return 0;
}

}  // namespace simclr
