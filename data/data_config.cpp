// data/data_config.cpp - the `data` config section (see data_config.h).
#include "data/data_config.h"

#include <cmath>
#include <filesystem>

#include "data/packed.h"

namespace fs = std::filesystem;

namespace simclr {

namespace {

struct DatasetDefaults {
  const char* path;
  int channels;
  int image_size;
  std::vector<double> mean, std;  // 1 or 3 values
  // small images: CIFAR-style augmentation (jitter strength 0.5, no blur)
  bool small;
  double crop_scale_min;
};

DatasetDefaults defaults_for(const std::string& d) {
  if (d == "fashion-mnist") return {"/usr/share/datasets/fashion-mnist", 1, 28, {0.2860}, {0.3530}, true, 0.2};
  if (d == "idx") return {"", 1, 28, {0.5}, {0.5}, true, 0.2};
  if (d == "cifar10") return {"", 3, 32, {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}, true, 0.08};
  if (d == "cifar100") return {"", 3, 32, {0.5071, 0.4865, 0.4409}, {0.2673, 0.2564, 0.2762}, true, 0.08};
  // image-folder, flat-folder: ImageNet statistics and the paper's settings
  return {"", 3, 224, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, false, 0.08};
}

// 3 values -> 1 (BT.601 luma of the three) or 1 -> 3 (repeated).
std::vector<float> fit_channels(const std::vector<double>& v, int channels) {
  std::vector<float> out;
  if (static_cast<int>(v.size()) == channels) {
    for (double x : v) out.push_back(static_cast<float>(x));
  } else if (v.size() == 1) {
    out.assign(static_cast<size_t>(channels), static_cast<float>(v[0]));
  } else {  // 3 -> 1
    out.push_back(static_cast<float>(0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]));
  }
  return out;
}

void read_range(ConfigObject& a, const char* key, double* lo, double* hi, double min, double max) {
  std::vector<double> r = a.get_doubles(key, {*lo, *hi}, min, max, {2});
  SIMCLR_CHECK(r[0] <= r[1], "config: '", a.path_of(key), "' = [", r[0], ", ", r[1], "]: the first value must not exceed the second");
  *lo = r[0];
  *hi = r[1];
}

AugmentConfig parse_augment(ConfigObject& a, const DatasetDefaults& d) {
  AugmentConfig c;
  c.crop_scale_min = d.crop_scale_min;
  if (d.small) {
    c.jitter_strength = 0.5;
    c.blur_p = 0.0;
  }
  read_range(a, "crop_scale", &c.crop_scale_min, &c.crop_scale_max, 1e-4, 1.0);
  read_range(a, "crop_ratio", &c.crop_ratio_min, &c.crop_ratio_max, 0.01, 100.0);
  c.flip_p = a.get_double("flip_p", c.flip_p, 0, 1);
  c.jitter_p = a.get_double("jitter_p", c.jitter_p, 0, 1);
  c.jitter_strength = a.get_double("jitter_strength", c.jitter_strength, 0, 2.5);
  double s = c.jitter_strength;
  c.brightness = a.get_double("brightness", 0.8 * s, 0, 10);
  c.contrast = a.get_double("contrast", 0.8 * s, 0, 10);
  c.saturation = a.get_double("saturation", 0.8 * s, 0, 10);
  c.hue = a.get_double("hue", 0.2 * s, 0, 0.5);
  c.gray_p = a.get_double("gray_p", c.gray_p, 0, 1);
  c.blur_p = a.get_double("blur_p", c.blur_p, 0, 1);
  read_range(a, "blur_sigma", &c.blur_sigma_min, &c.blur_sigma_max, 1e-3, 100.0);
  c.blur_kernel_frac = a.get_double("blur_kernel_frac", c.blur_kernel_frac, 0, 1);
  c.solarize_p = a.get_double("solarize_p", c.solarize_p, 0, 1);
  c.solarize_threshold = a.get_double("solarize_threshold", c.solarize_threshold, 0, 1);
  a.finish();
  return c;
}

std::string with_gz(const std::string& p) {
  std::error_code ec;
  if (fs::exists(p, ec)) return p;
  if (fs::exists(p + ".gz", ec)) return p + ".gz";
  return "";
}

// Fashion-MNIST file of `split`: kind "images" or "labels"; "" if absent.
std::string fmnist_file(const DataConfig& c, const std::string& split, const char* kind) {
  std::string prefix = split == "train" ? "train" : "t10k";
  std::string name = std::string(kind) == "images" ? "-images-idx3-ubyte" : "-labels-idx1-ubyte";
  return (fs::path(c.path) / (prefix + name)).string();
}

void need_dir(const std::string& key, const std::string& p) {
  std::error_code ec;
  SIMCLR_CHECK(!p.empty(), "config: 'data.", key, "' is required for this dataset");
  SIMCLR_CHECK(fs::exists(p, ec), "data.", key, ": '", p, "' does not exist");
  SIMCLR_CHECK(fs::is_directory(p, ec), "data.", key, ": '", p, "' is not a directory");
}

void need_file(const std::string& key, const std::string& p) {
  std::error_code ec;
  SIMCLR_CHECK(!p.empty(), "config: 'data.", key, "' is required for this dataset");
  SIMCLR_CHECK(fs::exists(p, ec), "data.", key, ": '", p, "' does not exist");
  SIMCLR_CHECK(!fs::is_directory(p, ec), "data.", key, ": '", p, "' is a directory, expected a file");
}

}  // namespace

DataConfig parse_data_config(ConfigObject& obj) {
  DataConfig c;
  c.dataset = obj.get_choice("dataset", "fashion-mnist",
                             {"fashion-mnist", "idx", "image-folder", "flat-folder", "cifar10", "cifar100", "packed"});
  // "format": "packed" (the spelling of issue 15) is the same as "dataset": "packed"
  if (obj.get_choice("format", "", {"", "packed"}) == "packed") {
    SIMCLR_CHECK(!obj.has("dataset") || c.dataset == "packed", "config: 'data.format' is \"packed\" but 'data.dataset' is \"",
                 c.dataset, "\" (a packed file is read as dataset \"packed\")");
    c.dataset = "packed";
  }
  // packed: the defaults of the dataset it was packed from (recorded in the file)
  DatasetDefaults d = defaults_for(c.dataset);
  c.path = obj.get_string("path", d.path);
  if (c.dataset == "packed") d = defaults_for(packed_source_kind(c.path));
  c.test_path = obj.get_string("test_path", "");
  c.images = obj.get_string("images", "");
  c.labels = obj.get_string("labels", "");
  c.test_images = obj.get_string("test_images", "");
  c.test_labels = obj.get_string("test_labels", "");
  c.split = obj.get_choice("split", "train", {"train", "test"});
  c.subset = obj.get_int("subset", 0, 0, int64_t(1) << 40);
  c.channels = static_cast<int>(obj.get_int("channels", d.channels, 1, 3));
  SIMCLR_CHECK(c.channels != 2, "config: 'data.channels' must be 1 or 3, got 2");
  c.image_size = static_cast<int>(obj.get_int("image_size", d.image_size, 1, 4096));
  c.strict = obj.get_bool("strict", false);
  c.workers = static_cast<int>(obj.get_int("workers", 2, 0, 256));
  c.prefetch = static_cast<int>(obj.get_int("prefetch", 4, 1, 1024));
  c.drop_last = obj.get_bool("drop_last", true);
  c.augment_on = obj.get_choice("augment_on", "auto", {"auto", "gpu", "cpu"});
  std::vector<double> mean = obj.get_doubles("mean", d.mean, -10, 10, {1, 3});
  std::vector<double> stdv = obj.get_doubles("std", d.std, 1e-6, 1e3, {1, 3});
  // explicit lists must match the channel count (or be one value)
  if (obj.has("mean"))
    SIMCLR_CHECK(mean.size() == 1 || static_cast<int>(mean.size()) == c.channels, "config: 'data.mean' has ",
                 mean.size(), " values for ", c.channels, " channel(s)");
  if (obj.has("std"))
    SIMCLR_CHECK(stdv.size() == 1 || static_cast<int>(stdv.size()) == c.channels, "config: 'data.std' has ",
                 stdv.size(), " values for ", c.channels, " channel(s)");
  c.mean = fit_channels(mean, c.channels);
  c.std = fit_channels(stdv, c.channels);
  c.eval_crop_fraction = obj.get_double("eval_crop_fraction", 1.0, 0.05, 1.0);
  ConfigObject a = obj.child("augment");
  c.augment = parse_augment(a, d);
  obj.finish();
  return c;
}

json data_config_to_json(const DataConfig& c) {
  const AugmentConfig& a = c.augment;
  json aug = {{"crop_scale", {a.crop_scale_min, a.crop_scale_max}},
              {"crop_ratio", {a.crop_ratio_min, a.crop_ratio_max}},
              {"flip_p", a.flip_p},
              {"jitter_p", a.jitter_p},
              {"jitter_strength", a.jitter_strength},
              {"brightness", a.brightness},
              {"contrast", a.contrast},
              {"saturation", a.saturation},
              {"hue", a.hue},
              {"gray_p", a.gray_p},
              {"blur_p", a.blur_p},
              {"blur_sigma", {a.blur_sigma_min, a.blur_sigma_max}},
              {"blur_kernel_frac", a.blur_kernel_frac},
              {"solarize_p", a.solarize_p},
              {"solarize_threshold", a.solarize_threshold}};
  json j = {{"dataset", c.dataset},   {"path", c.path},
            {"test_path", c.test_path}, {"images", c.images},
            {"labels", c.labels},     {"test_images", c.test_images},
            {"test_labels", c.test_labels}, {"split", c.split},
            {"subset", c.subset},     {"channels", c.channels},
            {"image_size", c.image_size}, {"strict", c.strict},
            {"workers", c.workers},   {"prefetch", c.prefetch},
            {"drop_last", c.drop_last}, {"augment_on", c.augment_on}, {"mean", c.mean},
            {"std", c.std},           {"eval_crop_fraction", c.eval_crop_fraction},
            {"augment", aug}};
  return j;
}

bool has_split(const DataConfig& c, const std::string& split) {
  if (split == "train") return true;
  if (c.dataset == "image-folder") return !c.test_path.empty();
  if (c.dataset == "flat-folder") return false;
  if (c.dataset == "idx") return !c.test_images.empty();
  if (c.dataset == "packed") return !c.test_path.empty();
  return true;  // fashion-mnist, cifar10, cifar100
}

bool augment_on_device(const DataConfig& c, Device device) {
  if (c.augment_on == "cpu") return false;
  if (c.augment_on == "gpu") {
    SIMCLR_CHECK(device.runs_cuda_code(), "config: 'data.augment_on' is gpu but the training device is ",
                 device.str(), " (gpu needs train.device cuda or emu)");
    return true;
  }
  return device.is_cuda();  // auto: on a GPU (emu only when asked for: tests)
}

void check_data_paths(const DataConfig& c, const std::string& split) {
  SIMCLR_CHECK(split == "train" || split == "test", "data split must be \"train\" or \"test\", got \"", split, "\"");
  bool test = split == "test";
  const std::string& d = c.dataset;
  if (d == "fashion-mnist") {
    need_dir("path", c.path);
    for (const char* kind : {"images", "labels"}) {
      std::string f = fmnist_file(c, split, kind);
      SIMCLR_CHECK(!with_gz(f).empty(), "data.path: Fashion-MNIST file '", f, ".gz' does not exist (nor '", f,
                   "'); install Debian's dataset-fashion-mnist or set data.path");
    }
  } else if (d == "idx") {
    if (test) {
      SIMCLR_CHECK(!c.test_images.empty(), "config: 'data.test_images' is required for the test split of dataset idx");
      need_file("test_images", c.test_images);
      if (!c.test_labels.empty()) need_file("test_labels", c.test_labels);
    } else {
      need_file("images", c.images);
      if (!c.labels.empty()) need_file("labels", c.labels);
    }
  } else if (d == "image-folder") {
    if (test) {
      SIMCLR_CHECK(!c.test_path.empty(), "config: 'data.test_path' is required for the test split of an image-folder");
      need_dir("test_path", c.test_path);
    } else {
      need_dir("path", c.path);
    }
  } else if (d == "flat-folder") {
    SIMCLR_CHECK(!test, "dataset flat-folder has no test split (no labels)");
    need_dir("path", c.path);
  } else if (d == "packed") {
    if (test) {
      SIMCLR_CHECK(!c.test_path.empty(), "config: 'data.test_path' (a second packed file) is required for the test "
                   "split of dataset packed");
      need_file("test_path", c.test_path);
    } else {
      need_file("path", c.path);
    }
  } else {  // cifar10, cifar100
    need_dir("path", c.path);
    for (const std::string& f : cifar_batch_files(c.path, split, d == "cifar100")) {
      std::error_code ec;
      SIMCLR_CHECK(fs::exists(f, ec), "data.path: ", d, " batch file '", f,
                   "' does not exist (expected the binary version of ", d, ")");
    }
  }
}

std::shared_ptr<Dataset> open_dataset(const DataConfig& c, const std::string& split) {
  check_data_paths(c, split);
  std::shared_ptr<Dataset> ds;
  const std::string& d = c.dataset;
  if (d == "fashion-mnist") {
    ds = open_idx(with_gz(fmnist_file(c, split, "images")), with_gz(fmnist_file(c, split, "labels")), c.channels,
                  fashion_mnist_classes(), "fashion-mnist " + split);
  } else if (d == "idx") {
    ds = split == "test" ? open_idx(c.test_images, c.test_labels, c.channels, {}, "idx test")
                         : open_idx(c.images, c.labels, c.channels, {}, "idx train");
  } else if (d == "image-folder") {
    ds = open_image_folder(split == "test" ? c.test_path : c.path, c.channels, c.strict);
  } else if (d == "flat-folder") {
    ds = open_flat_folder(c.path, c.channels, c.strict);
  } else if (d == "cifar10") {
    ds = open_cifar10(c.path, split, c.channels);
  } else if (d == "cifar100") {
    ds = open_cifar100(c.path, split, c.channels);
  } else if (d == "packed") {
    PackedOpenOptions po;
    po.channels = c.channels;
    ds = open_packed(split == "test" ? c.test_path : c.path, po);
  } else {
    fail("unknown dataset '", d, "'");
  }
  if (c.subset > 0 && split == c.split && c.subset < ds->size()) ds = subset(ds, c.subset);
  return ds;
}

std::shared_ptr<Dataset> open_dataset_path(const std::string& path, int channels, bool strict) {
  std::error_code ec;
  SIMCLR_CHECK(fs::exists(path, ec), "'", path, "' does not exist");
  if (!fs::is_directory(path, ec) && is_packed_file(path)) {
    PackedOpenOptions po;
    po.channels = channels;
    return open_packed(path, po);
  }
  if (!fs::is_directory(path, ec)) return open_idx(path, "", channels, {}, "idx");
  for (bool hundred : {false, true}) {
    std::vector<std::string> f = cifar_batch_files(path, "train", hundred);
    if (fs::exists(f[0], ec)) return hundred ? open_cifar100(path, "train", channels) : open_cifar10(path, "train", channels);
  }
  fs::directory_iterator it(path, ec), end;
  SIMCLR_CHECK(!ec, "cannot list '", path, "': ", ec.message());
  for (; it != end; it.increment(ec)) {
    SIMCLR_CHECK(!ec, "cannot list '", path, "': ", ec.message());
    std::error_code ec2;
    std::string name = it->path().filename().string();
    if (!name.empty() && name[0] != '.' && it->is_directory(ec2)) return open_image_folder(path, channels, strict);
  }
  return open_flat_folder(path, channels, strict);
}

}  // namespace simclr
