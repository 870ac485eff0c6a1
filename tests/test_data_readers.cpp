// tests/test_data_readers.cpp - dataset readers on files the test writes
// itself (PNG/JPEG/BMP/TGA via stb_image_write, IDX raw and gzip, CIFAR
// batches), bad input, the installed Fashion-MNIST, and the `data` config.
#include <stb_image_write.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "data/data_config.h"
#include "data/readers.h"
#include "helpers.h"
#include "skip.h"

using namespace simclr;
namespace fs = std::filesystem;

namespace {

// A deterministic test image, values spread over 0..255.
Image make_image(int h, int w, int c, int salt) {
  Image im(h, w, c);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int k = 0; k < c; k++) im.at(y, x, k) = static_cast<uint8_t>((x * 23 + y * 41 + k * 67 + salt * 13) % 256);
  return im;
}

// A smooth image (for JPEG, whose error on smooth content is small).
Image smooth_image(int h, int w, int c) {
  Image im(h, w, c);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int k = 0; k < c; k++) im.at(y, x, k) = static_cast<uint8_t>(40 + 4 * x + 3 * y + 20 * k);
  return im;
}

void write_png(const std::string& p, const Image& im) {
  REQUIRE(stbi_write_png(p.c_str(), im.width, im.height, im.channels, im.pixels.data(), im.width * im.channels));
}
void write_bytes(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}
std::vector<uint8_t> file_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_gz(const std::string& p, const std::vector<uint8_t>& b) {
  gzFile f = gzopen(p.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}
std::vector<uint8_t> idx_images(const std::vector<Image>& ims) {
  std::vector<uint8_t> b;
  put_be32(b, 0x00000803);
  put_be32(b, static_cast<uint32_t>(ims.size()));
  put_be32(b, static_cast<uint32_t>(ims[0].height));
  put_be32(b, static_cast<uint32_t>(ims[0].width));
  for (const Image& im : ims) b.insert(b.end(), im.pixels.begin(), im.pixels.end());
  return b;
}
std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> b;
  put_be32(b, 0x00000801);
  put_be32(b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

bool same_pixels(const Image& a, const Image& b) {
  return a.height == b.height && a.width == b.width && a.channels == b.channels && a.pixels == b.pixels;
}

}  // namespace

TEST_CASE("image folder: classes sorted, files sorted, PNG/BMP/TGA exact, JPEG close", "[data][readers]") {
  std::string root = test::scratch_dir("readers_folder");
  fs::create_directories(root + "/dog");
  fs::create_directories(root + "/cat/sub");
  fs::create_directories(root + "/.hidden");
  Image a = make_image(5, 7, 3, 1), b = make_image(6, 4, 3, 2), d = make_image(3, 3, 3, 4);
  Image c = smooth_image(16, 16, 3);
  REQUIRE(stbi_write_bmp((root + "/cat/a.BMP").c_str(), a.width, a.height, 3, a.pixels.data()));
  write_png(root + "/cat/sub/b.png", b);
  REQUIRE(stbi_write_jpg((root + "/dog/c.jpg").c_str(), c.width, c.height, 3, c.pixels.data(), 95));
  REQUIRE(stbi_write_tga((root + "/dog/d.tga").c_str(), d.width, d.height, 3, d.pixels.data()));
  write_png(root + "/.hidden/x.png", a);
  write_bytes(root + "/dog/notes.txt", {'h', 'i'});
  write_png(root + "/loose.png", a);  // files directly in root are not part of any class

  auto ds = open_image_folder(root, 3, true);
  REQUIRE(ds->size() == 4);
  CHECK(ds->class_names() == std::vector<std::string>{"cat", "dog"});
  CHECK(ds->num_classes() == 2);
  CHECK(ds->height() == 0);
  Sample s0 = ds->get(0), s1 = ds->get(1), s2 = ds->get(2), s3 = ds->get(3);
  CHECK(same_pixels(s0.image, a));  // cat/a.BMP (extension case-insensitive)
  CHECK(same_pixels(s1.image, b));  // cat/sub/b.png (class folders are searched recursively)
  CHECK(same_pixels(s3.image, d));  // dog/d.tga
  CHECK((s0.label == 0 && s1.label == 0 && s2.label == 1 && s3.label == 1));
  REQUIRE((s2.image.height == 16 && s2.image.width == 16 && s2.image.channels == 3));
  double err = 0;
  for (size_t i = 0; i < c.pixels.size(); i++) err += std::abs(int(s2.image.pixels[i]) - int(c.pixels[i]));
  CHECK(err / c.pixels.size() < 3.0);  // JPEG quality 95 on a smooth image

  // channel conversion: RGB -> grey by rounded BT.601 luma
  auto grey = open_image_folder(root, 1, true);
  Image g = grey->get(0).image;
  REQUIRE(g.channels == 1);
  for (int y = 0; y < a.height; y++)
    for (int x = 0; x < a.width; x++) REQUIRE(g.at(y, x, 0) == luma_u8(a.at(y, x, 0), a.at(y, x, 1), a.at(y, x, 2)));
}

TEST_CASE("decode: grey replicated to RGB, alpha dropped", "[data][readers]") {
  std::string dir = test::scratch_dir("readers_decode");
  Image grey = make_image(4, 5, 1, 3);
  Image rgba = make_image(3, 2, 4, 5);
  write_png(dir + "/g.png", grey);
  write_png(dir + "/rgba.png", rgba);
  Image out;
  std::string why;
  std::vector<uint8_t> bytes = file_bytes(dir + "/g.png");
  REQUIRE(decode_image(bytes.data(), bytes.size(), 3, &out, &why));
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 5; x++)
      for (int k = 0; k < 3; k++) REQUIRE(out.at(y, x, k) == grey.at(y, x, 0));
  bytes = file_bytes(dir + "/rgba.png");
  REQUIRE(decode_image(bytes.data(), bytes.size(), 3, &out, &why));
  for (int y = 0; y < 3; y++)
    for (int x = 0; x < 2; x++)
      for (int k = 0; k < 3; k++) REQUIRE(out.at(y, x, k) == rgba.at(y, x, k));
  std::vector<uint8_t> junk = {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'};
  CHECK_FALSE(decode_image(junk.data(), junk.size(), 3, &out, &why));
  CHECK(!why.empty());
}

TEST_CASE("flat folder: sorted, unlabelled", "[data][readers]") {
  std::string root = test::scratch_dir("readers_flat");
  write_png(root + "/b.png", make_image(4, 4, 3, 2));
  write_png(root + "/a.png", make_image(4, 4, 3, 1));
  write_bytes(root + "/readme.md", {'x'});
  auto ds = open_flat_folder(root, 3, false);
  REQUIRE(ds->size() == 2);
  CHECK(ds->num_classes() == 0);
  CHECK(same_pixels(ds->get(0).image, make_image(4, 4, 3, 1)));
  CHECK(ds->get(1).label == -1);
}

TEST_CASE("corrupt and truncated images: skipped with a count, or an error in strict mode", "[data][readers]") {
  std::string root = test::scratch_dir("readers_corrupt");
  fs::create_directories(root + "/k");
  Image good = make_image(8, 8, 3, 7);
  write_png(root + "/k/a_good.png", good);
  write_bytes(root + "/k/b_garbage.png", {'t', 'h', 'i', 's', ' ', 'i', 's', ' ', 'n', 'o', 't', ' ', 'p', 'n', 'g'});
  std::vector<uint8_t> png = file_bytes(root + "/k/a_good.png");
  png.resize(png.size() / 2);
  write_bytes(root + "/k/c_truncated.png", png);
  write_bytes(root + "/k/d_empty.jpg", {});
  write_png(root + "/k/e_good.png", make_image(8, 8, 3, 9));

  auto ds = open_image_folder(root, 3, false);
  REQUIRE(ds->size() == 5);
  CHECK(ds->skipped() == 0);
  // b, c, d do not decode: each is replaced by the next image that does (e)
  CHECK(same_pixels(ds->get(1).image, make_image(8, 8, 3, 9)));
  CHECK(ds->skipped() == 3);
  CHECK(same_pixels(ds->get(2).image, make_image(8, 8, 3, 9)));
  CHECK(ds->skipped() == 3);  // counted once per file
  CHECK(same_pixels(ds->get(0).image, good));

  auto strict = open_image_folder(root, 3, true);
  CHECK_THROWS_WITH(strict->get(1), Catch::Contains("b_garbage.png") && Catch::Contains("strict"));
  CHECK_THROWS_WITH(strict->get(2), Catch::Contains("c_truncated.png"));
  CHECK_THROWS_WITH(strict->get(3), Catch::Contains("d_empty.jpg") && Catch::Contains("empty file"));

  std::string bad = test::scratch_dir("readers_allbad");
  write_bytes(bad + "/x.png", {'x'});
  auto all_bad = open_flat_folder(bad, 3, false);
  CHECK_THROWS_WITH(all_bad->get(0), Catch::Contains("none of its 1 images decodes"));
}

TEST_CASE("folder errors name the path", "[data][readers]") {
  std::string root = test::scratch_dir("readers_errors");
  CHECK_THROWS_WITH(open_image_folder(root + "/missing", 3, false), Catch::Contains("missing' does not exist"));
  write_bytes(root + "/file.png", {'x'});
  CHECK_THROWS_WITH(open_image_folder(root + "/file.png", 3, false), Catch::Contains("is not a directory"));
  CHECK_THROWS_WITH(open_image_folder(root, 3, false),
                    Catch::Contains("no class subfolders") && Catch::Contains("flat-folder"));
  fs::create_directories(root + "/empty_class");
  CHECK_THROWS_WITH(open_image_folder(root, 3, false), Catch::Contains("contains no images"));
  std::string empty = test::scratch_dir("readers_empty");
  CHECK_THROWS_WITH(open_flat_folder(empty, 3, false), Catch::Contains("readers_empty' contains no images"));
}

TEST_CASE("IDX: raw and gzip, images and labels, header checks", "[data][readers]") {
  std::string dir = test::scratch_dir("readers_idx");
  std::vector<Image> ims = {make_image(4, 5, 1, 1), make_image(4, 5, 1, 2), make_image(4, 5, 1, 3)};
  std::vector<uint8_t> labels = {2, 0, 7};
  write_bytes(dir + "/img", idx_images(ims));
  write_bytes(dir + "/lab", idx_labels(labels));
  write_gz(dir + "/img.gz", idx_images(ims));
  write_gz(dir + "/lab.gz", idx_labels(labels));
  for (auto [ip, lp] : {std::pair{"/img", "/lab"}, std::pair{"/img.gz", "/lab.gz"}}) {
    auto ds = open_idx(dir + ip, dir + lp, 1);
    REQUIRE(ds->size() == 3);
    CHECK((ds->height() == 4 && ds->width() == 5 && ds->channels() == 1));
    CHECK(ds->num_classes() == 8);  // labels 0..7
    for (int i = 0; i < 3; i++) {
      Sample s = ds->get(i);
      CHECK(same_pixels(s.image, ims[i]));
      CHECK(s.label == labels[i]);
    }
  }
  auto rgb = open_idx(dir + "/img.gz", "", 3);
  CHECK(rgb->num_classes() == 0);
  CHECK(rgb->get(1).label == -1);
  CHECK(same_pixels(rgb->get(1).image, convert_channels(ims[1], 3)));

  // bad magic (a labels file given as images, and garbage)
  CHECK_THROWS_WITH(open_idx(dir + "/lab", "", 1), Catch::Contains("/lab': bad magic number 0x00000801"));
  write_bytes(dir + "/junk", {'P', 'K', 3, 4, 0, 0, 0, 0});
  CHECK_THROWS_WITH(open_idx(dir + "/junk", "", 1), Catch::Contains("junk': bad magic"));
  // count mismatch
  write_bytes(dir + "/lab2", idx_labels({1, 2}));
  CHECK_THROWS_WITH(open_idx(dir + "/img", dir + "/lab2", 1),
                    Catch::Contains("has 3 images but") && Catch::Contains("lab2' has 2 labels"));
  // truncated data, trailing data, truncated gzip stream, too short
  std::vector<uint8_t> b = idx_images(ims);
  std::vector<uint8_t> cut(b.begin(), b.end() - 5);
  write_bytes(dir + "/cut", cut);
  CHECK_THROWS_WITH(open_idx(dir + "/cut", "", 1), Catch::Contains("cut' is truncated") && Catch::Contains("3 x 4 x 5"));
  std::vector<uint8_t> longer = b;
  longer.push_back(0);
  write_bytes(dir + "/long", longer);
  CHECK_THROWS_WITH(open_idx(dir + "/long", "", 1), Catch::Contains("1 bytes more"));
  std::vector<uint8_t> gz = file_bytes(dir + "/img.gz");
  gz.resize(gz.size() / 2);
  write_bytes(dir + "/half.gz", gz);
  CHECK_THROWS_WITH(open_idx(dir + "/half.gz", "", 1), Catch::Contains("half.gz"));
  write_bytes(dir + "/tiny", {0, 0});
  CHECK_THROWS_WITH(open_idx(dir + "/tiny", "", 1), Catch::Contains("too short"));
  CHECK_THROWS_WITH(open_idx(dir + "/nope.gz", "", 1), Catch::Contains("nope.gz' does not exist"));
  // a float IDX (type 0x0D) is refused by name
  std::vector<uint8_t> f = {0, 0, 0x0D, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0};
  write_bytes(dir + "/float", f);
  CHECK_THROWS_WITH(open_idx(dir + "/float", "", 1), Catch::Contains("not supported"));
}

TEST_CASE("CIFAR-10 and CIFAR-100 binary batches", "[data][readers]") {
  std::string dir = test::scratch_dir("readers_cifar");
  fs::create_directories(dir + "/cifar-10-batches-bin");
  std::string c10 = dir + "/cifar-10-batches-bin";
  // record r of batch k: label (k + r) % 10, pixel (c, y, x) = (k * 31 + r * 7 + c * 50 + y * 3 + x) % 256
  auto pix = [](int k, int r, int c, int y, int x) { return static_cast<uint8_t>((k * 31 + r * 7 + c * 50 + y * 3 + x) % 256); };
  auto batch = [&](int k, int nrec, bool hundred) {
    std::vector<uint8_t> b;
    for (int r = 0; r < nrec; r++) {
      if (hundred) b.push_back(static_cast<uint8_t>(r % 20));  // coarse
      b.push_back(static_cast<uint8_t>(hundred ? (k + r) % 100 : (k + r) % 10));
      for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
          for (int x = 0; x < 32; x++) b.push_back(pix(k, r, c, y, x));
    }
    return b;
  };
  for (int k = 1; k <= 5; k++) write_bytes(c10 + "/data_batch_" + std::to_string(k) + ".bin", batch(k, 2, false));
  write_bytes(c10 + "/test_batch.bin", batch(0, 3, false));
  {
    std::ofstream m(c10 + "/batches.meta.txt");
    for (const char* n : {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"})
      m << n << "\n";
    m << "\n";
  }
  auto tr = open_cifar10(dir, "train", 3);  // finds the cifar-10-batches-bin subfolder
  REQUIRE(tr->size() == 10);
  CHECK(tr->class_names()[9] == "truck");
  Sample s = tr->get(3);  // batch 2, record 1
  CHECK(s.label == 3);
  REQUIRE((s.image.height == 32 && s.image.width == 32 && s.image.channels == 3));
  for (int y = 0; y < 32; y++)
    for (int x = 0; x < 32; x++)
      for (int c = 0; c < 3; c++) REQUIRE(s.image.at(y, x, c) == pix(2, 1, c, y, x));
  auto te = open_cifar10(c10, "test", 1);
  REQUIRE(te->size() == 3);
  Image g = te->get(2).image;
  CHECK(g.at(5, 6, 0) == luma_u8(pix(0, 2, 0, 5, 6), pix(0, 2, 1, 5, 6), pix(0, 2, 2, 5, 6)));

  // errors: truncated batch, bad label, missing batch
  std::vector<uint8_t> b = batch(1, 2, false);
  b.pop_back();
  write_bytes(c10 + "/data_batch_1.bin", b);
  CHECK_THROWS_WITH(open_cifar10(c10, "train", 3),
                    Catch::Contains("data_batch_1.bin' has 6145 bytes") && Catch::Contains("3073-byte"));
  b = batch(1, 2, false);
  b[0] = 10;
  write_bytes(c10 + "/data_batch_1.bin", b);
  CHECK_THROWS_WITH(open_cifar10(c10, "train", 3), Catch::Contains("label 10"));
  fs::remove(c10 + "/data_batch_1.bin");
  CHECK_THROWS_WITH(open_cifar10(c10, "train", 3), Catch::Contains("data_batch_1.bin' does not exist"));

  std::string c100 = test::scratch_dir("readers_cifar100");
  write_bytes(c100 + "/train.bin", batch(40, 4, true));
  write_bytes(c100 + "/test.bin", batch(90, 2, true));
  auto t100 = open_cifar100(c100, "train", 3);
  REQUIRE(t100->size() == 4);
  CHECK(t100->num_classes() == 100);
  CHECK(t100->get(3).label == 43);  // the fine label, not the coarse one (3)
  CHECK(open_cifar100(c100, "test", 3)->get(1).label == 91);
  CHECK(t100->get(2).image.at(31, 31, 2) == pix(40, 2, 2, 31, 31));
}

TEST_CASE("Fashion-MNIST from the Debian package: 60000 / 10000 images, labels 0..9", "[data][readers][fashion]") {
  DataConfig c;  // defaults: fashion-mnist at /usr/share/datasets/fashion-mnist
  if (!fs::exists(c.path + "/train-images-idx3-ubyte.gz"))
    SIMCLR_SKIP("Fashion-MNIST not installed at " + c.path + " (setup.sh installs dataset-fashion-mnist)");
  for (auto [split, n] : {std::pair{"train", 60000}, std::pair{"test", 10000}}) {
    std::shared_ptr<Dataset> ds = open_dataset(c, split);
    REQUIRE(ds->size() == n);
    CHECK((ds->height() == 28 && ds->width() == 28 && ds->channels() == 1));
    CHECK(ds->num_classes() == 10);
    CHECK(ds->class_names()[9] == "Ankle boot");
    std::vector<int> counts(10, 0);
    double mean = 0;
    for (int64_t i = 0; i < n; i++) {
      Sample s = ds->get(i);
      REQUIRE((s.label >= 0 && s.label <= 9));
      counts[s.label]++;
      if (i < 1000)
        for (uint8_t v : s.image.pixels) mean += v;
    }
    for (int k = 0; k < 10; k++) CHECK(counts[k] == n / 10);  // balanced classes
    mean /= 1000.0 * 784 * 255;
    CHECK(std::abs(mean - 0.286) < 0.02);  // the usual Fashion-MNIST mean
    if (std::string(split) == "train") CHECK(ds->get(0).label == 9);  // the first training image is an ankle boot
  }
}

TEST_CASE("data config: defaults, strict keys, per-dataset defaults, round trip", "[data][config]") {
  json j = json::parse(R"({"data": {}})");
  ConfigObject root(j, "");
  ConfigObject d = root.child("data");
  DataConfig c = parse_data_config(d);
  CHECK(c.dataset == "fashion-mnist");
  CHECK((c.channels == 1 && c.image_size == 28));
  CHECK(c.mean == std::vector<float>{0.2860f});
  CHECK(c.augment.crop_scale_min == 0.2);
  CHECK(c.augment.brightness == Approx(0.4));  // small images: strength 0.5
  CHECK(c.augment.blur_p == 0.0);

  auto parse = [](const std::string& text) {
    json jj = json::parse(text);
    ConfigObject o(jj, "data");
    return parse_data_config(o);
  };
  DataConfig f = parse(R"({"dataset": "image-folder", "path": "/x", "augment": {"jitter_strength": 0.5, "hue": 0.05}})");
  CHECK((f.channels == 3 && f.image_size == 224 && f.mean.size() == 3));
  CHECK(f.augment.crop_scale_min == 0.08);
  CHECK(f.augment.blur_p == 0.5);  // the paper's defaults for large images
  CHECK(f.augment.brightness == Approx(0.4));
  CHECK(f.augment.hue == 0.05);  // explicit beats the strength
  DataConfig g = parse(R"({"dataset": "cifar10", "channels": 1})");
  REQUIRE(g.mean.size() == 1);
  CHECK(g.mean[0] == Approx(0.299 * 0.4914 + 0.587 * 0.4822 + 0.114 * 0.4465));

  CHECK_THROWS_WITH(parse(R"({"datset": "idx"})"), Catch::Contains("unknown key 'data.datset'"));
  CHECK_THROWS_WITH(parse(R"({"augment": {"blur_pp": 1}})"),
                    Catch::Contains("unknown key 'data.augment.blur_pp' (did you mean 'data.augment.blur_p'?)"));
  CHECK_THROWS_WITH(parse(R"({"dataset": "imagenet"})"), Catch::Contains("is not one of"));
  CHECK_THROWS_WITH(parse(R"({"channels": 2})"), Catch::Contains("must be 1 or 3"));
  CHECK_THROWS_WITH(parse(R"({"augment": {"crop_scale": [0.9, 0.1]}})"),
                    Catch::Contains("'data.augment.crop_scale'") && Catch::Contains("must not exceed"));
  CHECK_THROWS_WITH(parse(R"({"augment": {"hue": 0.7}})"), Catch::Contains("'data.augment.hue' = 0.7 is out of range"));
  CHECK_THROWS_WITH(parse(R"({"dataset": "cifar10", "mean": [0.1, 0.2]})"), Catch::Contains("must have 1 or 3 values"));
  CHECK_THROWS_WITH(parse(R"({"mean": [0.1, 0.2, 0.3]})"), Catch::Contains("'data.mean' has 3 values for 1 channel"));

  // to_json -> parse gives the same config
  json back = data_config_to_json(f);
  ConfigObject bo(back, "data");
  DataConfig f2 = parse_data_config(bo);
  CHECK(data_config_to_json(f2) == back);
}

TEST_CASE("data paths are checked before any work, naming the path", "[data][config]") {
  DataConfig c;
  c.path = "/nonexistent/fmnist";
  CHECK_THROWS_WITH(check_data_paths(c, "train"), Catch::Contains("data.path: '/nonexistent/fmnist' does not exist"));
  std::string dir = test::scratch_dir("readers_paths");
  c.path = dir;
  CHECK_THROWS_WITH(check_data_paths(c, "test"), Catch::Contains("t10k-images-idx3-ubyte.gz' does not exist"));
  c.dataset = "idx";
  CHECK_THROWS_WITH(check_data_paths(c, "train"), Catch::Contains("'data.images' is required"));
  c.images = dir + "/imgs";
  CHECK_THROWS_WITH(check_data_paths(c, "train"), Catch::Contains("imgs' does not exist"));
  CHECK_FALSE(has_split(c, "test"));
  c.dataset = "cifar10";
  CHECK_THROWS_WITH(check_data_paths(c, "train"), Catch::Contains("data_batch_1.bin' does not exist"));
  c.dataset = "image-folder";
  CHECK_THROWS_WITH(check_data_paths(c, "test"), Catch::Contains("'data.test_path' is required"));
  c.dataset = "flat-folder";
  CHECK_THROWS_WITH(check_data_paths(c, "test"), Catch::Contains("no test split"));
}

TEST_CASE("open_dataset_path guesses the format, subset keeps the first images", "[data][readers]") {
  std::string root = test::scratch_dir("readers_guess");
  fs::create_directories(root + "/classes/a");
  write_png(root + "/classes/a/1.png", make_image(3, 3, 3, 1));
  fs::create_directories(root + "/flat");
  write_png(root + "/flat/1.png", make_image(3, 3, 3, 1));
  write_png(root + "/flat/2.png", make_image(3, 3, 3, 2));
  write_gz(root + "/x.gz", idx_images({make_image(2, 2, 1, 0)}));
  CHECK(open_dataset_path(root + "/classes", 3, false)->num_classes() == 1);
  CHECK(open_dataset_path(root + "/flat", 3, false)->size() == 2);
  CHECK(open_dataset_path(root + "/x.gz", 1, false)->height() == 2);
  std::shared_ptr<Dataset> flat = open_dataset_path(root + "/flat", 3, false);
  auto sub = subset(flat, 1);
  CHECK(sub->size() == 1);
  CHECK(same_pixels(sub->get(0).image, make_image(3, 3, 3, 1)));
  CHECK_THROWS_WITH(subset(flat, 3), Catch::Contains("subset of 3 images from a dataset of 2"));
}
