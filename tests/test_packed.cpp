// tests/test_packed.cpp - the packed dataset format (data/packed.h): pack/read
// round trips pixel-exact against the source (in-memory, a folder of PNGs of
// varying sizes, an IDX file), the max-side rule and its area filter, every
// corruption case with its own message (truncations, header and table bytes,
// pixel bytes found by verify, wrong magic, newer version, crafted offsets
// and sizes pointing outside the file or overflowing), refusing to overwrite,
// no file left by a failed pack, the data config (`dataset`/`format`
// "packed", defaults from the source, the test split, detection by magic),
// and training from a packed file repeating the source's losses exactly.
#include <stb_image_write.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/data_config.h"
#include "data/packed.h"
#include "data/readers.h"
#include "helpers.h"
#include "skip.h"
#include "tools/cli/finetune_cli.h"
#include "tools/cli/pack_cli.h"
#include "train/run_config.h"
#include "train/trainer.h"

using namespace simclr;
namespace fs = std::filesystem;

namespace {

Image make_image(int h, int w, int c, int salt) {
  Image im(h, w, c);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int k = 0; k < c; k++) im.at(y, x, k) = static_cast<uint8_t>((x * 23 + y * 41 + k * 67 + salt * 13) % 256);
  return im;
}

std::vector<uint8_t> file_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}
uint64_t get64(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}
void set64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
void set32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

// Every image, label, size and class of `a` and `b` equal.
void require_same(const Dataset& a, const Dataset& b) {
  REQUIRE(a.size() == b.size());
  CHECK(a.channels() == b.channels());
  CHECK(a.class_names() == b.class_names());
  for (int64_t i = 0; i < a.size(); i++) {
    INFO("image " << i);
    Sample x = a.get(i), y = b.get(i);
    REQUIRE(x.image.height == y.image.height);
    REQUIRE(x.image.width == y.image.width);
    REQUIRE(x.image.channels == y.image.channels);
    REQUIRE(x.image.pixels == y.image.pixels);
    REQUIRE(x.label == y.label);
  }
}

std::shared_ptr<Dataset> small_memory(int n, int h, int w, int c) {
  std::vector<Image> ims;
  std::vector<int64_t> labels;
  for (int i = 0; i < n; i++) {
    ims.push_back(make_image(h, w, c, i));
    labels.push_back((i * 7) % 5);
  }
  return memory_dataset(std::move(ims), std::move(labels), {"a", "b", "c", "d", "e"}, "mem");
}

PackOptions small_opts(uint32_t chunk = 256) {
  PackOptions o;
  o.max_side = 0;
  o.threads = 3;
  o.chunk_bytes = chunk;
  o.source_kind = "cifar10";
  return o;
}

// A packed file of 37 images 5 x 7 x 3 in 256-byte chunks (a dozen chunks).
std::string packed_fixture(const std::string& dir) {
  const std::string f = dir + "/x.simclr";
  pack_dataset(*small_memory(37, 5, 7, 3), f, small_opts());
  return f;
}

std::string open_error(const std::string& f) {
  try {
    open_packed(f);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("packed: an in-memory dataset round-trips pixel for pixel, with labels, classes and sizes", "[packed]") {
  const std::string dir = test::scratch_dir("packed_roundtrip");
  auto src = small_memory(37, 5, 7, 3);
  std::vector<int64_t> seen;
  PackOptions o = small_opts();
  o.progress = [&](int64_t d, int64_t t) {
    CHECK(t == 37);
    seen.push_back(d);
  };
  const PackResult r = pack_dataset(*src, dir + "/x.simclr", o);
  CHECK(r.images == 37);
  CHECK(r.resized == 0);
  CHECK(r.bytes == fs::file_size(dir + "/x.simclr"));
  REQUIRE(seen.size() == 37);
  CHECK(seen.back() == 37);
  auto p = open_packed(dir + "/x.simclr");
  require_same(*src, *p);
  CHECK(p->height() == 5);
  CHECK(p->width() == 7);
  CHECK(p->num_classes() == 5);
  CHECK(p->source_kind() == "cifar10");
  CHECK(p->source_description() == src->describe());
  const PackedHeader& h = p->header();
  CHECK(h.version == kPackedVersion);
  CHECK(h.count == 37);
  CHECK(h.pixels_bytes == 37u * 5 * 7 * 3);
  CHECK(h.num_chunks == (37u * 105 + 255) / 256);
  CHECK(h.tables_offset % 64 == 0);
  CHECK(p->verify().empty());
  CHECK(p->describe().find("37 images 5x7x3") != std::string::npos);
  // the 8-byte magic, and nothing but the renamed file in the folder
  CHECK(std::string(reinterpret_cast<const char*>(file_bytes(dir + "/x.simclr").data()), 8) == "SIMCLRPK");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  // read as grey: the reader's BT.601 conversion of the stored RGB
  PackedOpenOptions grey;
  grey.channels = 1;
  auto g = open_packed(dir + "/x.simclr", grey);
  CHECK(g->channels() == 1);
  CHECK(g->get(3).image.pixels == convert_channels(src->get(3).image, 1).pixels);
  // one thread gives the same bytes as three
  PackOptions one = small_opts();
  one.threads = 1;
  pack_dataset(*src, dir + "/y.simclr", one);
  CHECK(file_bytes(dir + "/x.simclr") == file_bytes(dir + "/y.simclr"));
  // unlabelled source: no labels table, label -1
  std::vector<Image> ims = {make_image(3, 3, 1, 1), make_image(3, 3, 1, 2)};
  pack_dataset(*memory_dataset(ims, {}, {}, "u"), dir + "/u.simclr", small_opts());
  auto u = open_packed(dir + "/u.simclr");
  CHECK(u->num_classes() == 0);
  CHECK(u->get(1).label == -1);
  CHECK(u->get(1).image.pixels == ims[1].pixels);
  CHECK((u->header().flags & kPackedLabelled) == 0);
}

TEST_CASE("packed: a folder of PNGs of varying sizes and an IDX file round-trip exactly and --max-side resizes", "[packed]") {
  const std::string dir = test::scratch_dir("packed_folder");
  const int sizes[][2] = {{10, 20}, {30, 12}, {8, 8}, {17, 5}, {40, 41}};
  for (int i = 0; i < 5; i++) {
    const std::string cls = dir + "/img/" + (i % 2 ? "odd" : "even");
    fs::create_directories(cls);
    Image im = make_image(sizes[i][0], sizes[i][1], 3, i);
    REQUIRE(stbi_write_png((cls + "/" + std::to_string(i) + ".png").c_str(), im.width, im.height, 3, im.pixels.data(),
                           im.width * 3));
  }
  auto folder = open_image_folder(dir + "/img", 3, true);
  pack_dataset(*folder, dir + "/f.simclr", small_opts(1000));
  auto p = open_packed(dir + "/f.simclr");
  require_same(*folder, *p);
  CHECK(p->height() == 0);  // sizes vary
  CHECK(p->class_names() == std::vector<std::string>{"even", "odd"});

  // max side 10: each image is shrink_to_max_side of the folder's
  PackOptions o = small_opts(1000);
  o.max_side = 10;
  const PackResult r = pack_dataset(*folder, dir + "/m.simclr", o);
  CHECK(r.resized == 2);  // 30x12 and 40x41; 10x20, 8x8 and 17x5 are kept
  auto m = open_packed(dir + "/m.simclr");
  CHECK(m->header().max_side == 10);
  for (int64_t i = 0; i < folder->size(); i++) {
    Image want = shrink_to_max_side(folder->get(i).image, 10);
    Image got = m->get(i).image;
    CHECK(std::min(got.height, got.width) <= 10);
    CHECK(got.height == want.height);
    CHECK(got.width == want.width);
    CHECK(got.pixels == want.pixels);
  }

  // IDX: 1 channel, labels, numbered classes
  std::vector<uint8_t> ib = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 2}, lb = {0, 0, 8, 1, 0, 0, 0, 4, 2, 0, 1, 2};
  for (int i = 0; i < 24; i++) ib.push_back(static_cast<uint8_t>(i * 11));
  write_bytes(dir + "/i-images-idx3-ubyte", ib);
  write_bytes(dir + "/i-labels-idx1-ubyte", lb);
  PackSource s = open_pack_source(dir + "/i-images-idx3-ubyte", "", "train", 0, false, "");
  CHECK(s.kind == "idx");
  CHECK(s.ds->channels() == 1);
  pack_dataset(*s.ds, dir + "/i.simclr", small_opts());
  auto q = open_packed(dir + "/i.simclr");
  require_same(*open_idx(dir + "/i-images-idx3-ubyte", dir + "/i-labels-idx1-ubyte", 1), *q);
  CHECK(q->get(3).label == 2);
  CHECK(q->class_names().size() == 3);
  // detection of the other kinds
  CHECK(open_pack_source(dir + "/img", "", "train", 0, false, "").kind == "image-folder");
  CHECK(open_pack_source(dir + "/img/odd", "", "train", 0, false, "").kind == "flat-folder");
  PackSource rp = open_pack_source(dir + "/i.simclr", "", "train", 0, false, "");
  CHECK(rp.kind == "cifar10");  // a repack keeps the recorded source kind (small_opts' "cifar10")
  CHECK(rp.inputs == std::vector<std::string>{dir + "/i.simclr"});
}

TEST_CASE("packed: the max-side rule and its area filter", "[packed]") {
  // exact 2x: each output pixel is the rounded mean of a 2 x 2 block
  Image a = make_image(6, 10, 3, 4);
  Image s = shrink_to_max_side(a, 3);
  REQUIRE(s.height == 3);
  REQUIRE(s.width == 5);
  for (int y = 0; y < 3; y++)
    for (int x = 0; x < 5; x++)
      for (int c = 0; c < 3; c++) {
        const int sum = a.at(2 * y, 2 * x, c) + a.at(2 * y + 1, 2 * x, c) + a.at(2 * y, 2 * x + 1, c) +
                        a.at(2 * y + 1, 2 * x + 1, c);
        INFO(y << "," << x << "," << c);
        CHECK(s.at(y, x, c) == (sum + 2) / 4);  // round half up of sum / 4
      }
  // aspect: the longer side is round(L * M / s)
  CHECK(shrink_to_max_side(Image(300, 200, 1), 100).height == 150);
  CHECK(shrink_to_max_side(Image(300, 200, 1), 100).width == 100);
  CHECK(shrink_to_max_side(Image(7, 1000, 1), 3).width == 429);  // 1000 * 3 / 7 = 428.57
  CHECK(shrink_to_max_side(Image(7, 1000, 1), 3).height == 3);
  // at or below the limit, and M = 0: unchanged
  CHECK(shrink_to_max_side(a, 6).pixels == a.pixels);
  CHECK(shrink_to_max_side(a, 0).pixels == a.pixels);
  // a constant image stays constant through a fractional factor
  Image k(37, 23, 3);
  std::fill(k.pixels.begin(), k.pixels.end(), 201);
  Image ks = shrink_to_max_side(k, 10);
  CHECK(ks.width == 10);
  CHECK(ks.height == 16);  // 37 * 10 / 23 = 16.09
  for (uint8_t v : ks.pixels) REQUIRE(v == 201);
}

TEST_CASE("packed: truncated, corrupt, foreign, newer and crafted files are clear errors naming the file", "[packed]") {
  const std::string dir = test::scratch_dir("packed_corrupt");
  const std::string good = packed_fixture(dir);
  const std::vector<uint8_t> g = file_bytes(good);
  const std::string f = dir + "/bad.simclr";
  auto with = [&](const std::vector<uint8_t>& b) {
    write_bytes(f, b);
    std::string e = open_error(f);
    CHECK(e.find("'" + f + "'") != std::string::npos);  // every message names the file
    return e;
  };
  using Catch::Contains;
  using namespace packed_field;
  SECTION("truncated at several points") {
    CHECK_THAT(with({}), Contains("empty"));
    CHECK_THAT(with({g.begin(), g.begin() + 5}), Contains("truncated: 5 bytes, shorter than the 128-byte header"));
    CHECK_THAT(with({g.begin(), g.begin() + 100}), Contains("truncated: 100 bytes"));
    for (size_t cut : {size_t{128}, size_t{1000}, static_cast<size_t>(get64(g, kTablesOffset)), g.size() - 1}) {
      INFO("cut at " << cut);
      CHECK_THAT(with({g.begin(), g.begin() + static_cast<std::ptrdiff_t>(cut)}),
                 Contains("truncated: the header says " + std::to_string(g.size()) + " bytes, the file has " +
                          std::to_string(cut)));
    }
    std::vector<uint8_t> longer = g;
    longer.push_back(0);
    CHECK_THAT(with(longer), Contains("1 bytes more than the " + std::to_string(g.size())));
  }
  SECTION("a flipped header byte, table byte or pixel byte") {
    std::vector<uint8_t> b = g;
    b[kCount] ^= 1;
    CHECK_THAT(with(b), Contains("header checksum mismatch"));
    b = g;
    b[g.size() - 3] ^= 0x40;  // inside the chunk checksums, the last table
    CHECK_THAT(with(b), Contains("tables checksum mismatch"));
    b = g;
    const size_t at = 128 + 5 * 256 + 17;  // chunk 5
    b[at] ^= 0x10;
    write_bytes(f, b);
    auto p = open_packed(f);  // pixel chunks are not read at open
    std::vector<PackedChunkError> bad = p->verify();
    REQUIRE(bad.size() == 1);
    CHECK(bad[0].chunk == 5);
    CHECK(bad[0].begin == 128 + 5 * 256);
    CHECK(bad[0].end == 128 + 6 * 256);
    CHECK(bad[0].first_image == (5 * 256) / 105);
    CHECK(bad[0].last_image == (6 * 256 - 1) / 105);
    PackedOpenOptions v;
    v.verify = true;
    CHECK_THROWS_WITH(open_packed(f, v), Contains("'" + f + "'") && Contains("1 of 16 pixel chunks fail") &&
                                             Contains("chunk 5 (bytes 1408..1664, images 12..14)"));
  }
  SECTION("wrong magic, newer and zero versions") {
    std::vector<uint8_t> b = g;
    std::memcpy(b.data(), "PK\x03\x04zip!", 8);
    CHECK_THAT(with(b), Contains("not a simclr packed dataset: wrong magic \"PK..zip!\""));
    b = g;
    set32(b, kVersion, kPackedVersion + 1);
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("written by a newer simclr (format version 2, this build reads up to version 1)"));
    set32(b, kVersion, 0);
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("invalid format version 0"));
  }
  SECTION("crafted header fields (resealed, so they pass the checksums)") {
    struct Case {
      size_t field;
      uint64_t value;
      bool wide;
      const char* message;
    };
    const uint64_t t = get64(g, kTablesOffset);
    const Case cases[] = {
        {kIndexOffset, g.size() + 64, true, "the image index table"},
        {kIndexOffset, ~uint64_t{0} - 7, true, "the image index table"},  // offset + length overflows
        {kCount, uint64_t{1} << 61, true, "the image index table"},         // count x 16 overflows
        {kStringsBytes, ~uint64_t{0}, true, "the strings table"},
        {kChecksumsOffset, 8, true, "the checksums table"},
        {kLabelsOffset, t - 64, true, "the labels table"},
        {kPixelsBytes, ~uint64_t{0} - 100, true, "pixel area of"},
        {kTablesOffset, t + 1, true, "tables offset"},
        {kNumChunks, 3, true, "checksum chunks"},
        {kChannels, 2, false, "2 channels"},
        {kChunkBytes, 0, false, "chunk size 0"},
        {kNumClasses, 100000, false, "classes"},
        {kFlags, 8, false, "unknown flags"},
        {kHeaderBytes, 64, false, "header size 64"},
    };
    for (const Case& c : cases) {
      INFO("field at " << c.field << " = " << c.value);
      std::vector<uint8_t> b = g;
      if (c.wide) set64(b, c.field, c.value);
      else set32(b, c.field, static_cast<uint32_t>(c.value));
      packed_reseal(b);
      CHECK_THAT(with(b), Contains(c.message));
    }
    // the index entries (tables resealed): an image outside the pixel area, sides whose product overflows,
    // a gap between images, a label out of range
    const uint64_t ix = get64(g, kIndexOffset), lab = get64(g, kLabelsOffset);
    std::vector<uint8_t> b = g;
    set64(b, ix + 16 * 36, 37 * 105);
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("image 36 (5x7x3 = 105 bytes at pixel offset 3885) lies outside the pixel area"));
    b = g;
    set32(b, ix + 16 * 2 + 8, 1u << 20);
    set32(b, ix + 16 * 2 + 12, 1u << 20);
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("image 2 (1048576x1048576x3"));
    b = g;
    set32(b, ix + 16 * 2 + 8, 0);
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("image 2 has size 0x7"));
    b = g;
    set64(b, ix + 16 * 4, 4 * 105 + 1);
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("image 4 starts at pixel offset 421, expected 420"));
    b = g;
    set32(b, lab + 4 * 9, 5);
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("image 9 has label 5, out of range for 5 classes"));
    b = g;
    set32(b, lab + 4 * 9, 0xFFFFFFFFu);
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("image 9 has label -1"));
    b = g;
    set32(b, get64(g, kStringsOffset), 1000);  // the first string's length
    packed_reseal(b);
    CHECK_THAT(with(b), Contains("runs past the strings table"));
  }
  SECTION("not a file, missing file") {
    CHECK_THAT(open_error(dir), Contains("not a regular file"));
    CHECK_THAT(open_error(dir + "/none"), Contains("cannot open"));
  }
}

TEST_CASE("packed: refuses to overwrite without force or an input, and a failed pack leaves no file", "[packed]") {
  const std::string dir = test::scratch_dir("packed_outputs");
  auto src = small_memory(4, 3, 3, 1);
  const std::string f = dir + "/x.simclr";
  pack_dataset(*src, f, small_opts());
  const auto before = file_bytes(f);
  CHECK_THROWS_WITH(pack_dataset(*src, f, small_opts()),
                    Catch::Contains("--out '" + f + "' already exists") && Catch::Contains("--force"));
  PackOptions force = small_opts();
  force.force = true;
  auto other = small_memory(5, 3, 3, 1);
  pack_dataset(*other, f, force);
  CHECK(open_packed(f)->size() == 5);
  PackOptions in = force;
  in.inputs = {f};
  CHECK_THROWS_WITH(pack_dataset(*open_packed(f), f, in), Catch::Contains("refusing to overwrite an input"));
  CHECK(open_packed(f)->size() == 5);

  // a source that fails half-way (an undecodable image in strict mode): an error naming it, no output, no temporary
  fs::create_directories(dir + "/img/c");
  Image im = make_image(4, 4, 3, 0);
  for (int i = 0; i < 40; i++)
    REQUIRE(stbi_write_png((dir + "/img/c/" + std::to_string(100 + i) + ".png").c_str(), 4, 4, 3, im.pixels.data(), 12));
  write_bytes(dir + "/img/c/120.png", {1, 2, 3});
  auto strict = open_image_folder(dir + "/img", 3, true);
  CHECK_THROWS_WITH(pack_dataset(*strict, dir + "/s.simclr", small_opts()), Catch::Contains("120.png"));
  CHECK(!fs::exists(dir + "/s.simclr"));
  int files = 0;
  for (auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  CHECK(files == 1);  // x.simclr only
  // non-strict: packed as training from the folder sees it (the next image), counted
  auto lenient = open_image_folder(dir + "/img", 3, false);
  const PackResult r = pack_dataset(*lenient, dir + "/s.simclr", small_opts());
  CHECK(r.skipped == 1);
  CHECK(open_packed(dir + "/s.simclr")->size() == 40);
}

TEST_CASE("packed: the data config reads it as dataset packed, with the source's defaults and a test file", "[packed]") {
  const std::string dir = test::scratch_dir("packed_config");
  std::vector<Image> ims;
  for (int i = 0; i < 6; i++) ims.push_back(make_image(28, 28, 1, i));
  PackOptions o = small_opts(4096);
  o.source_kind = "fashion-mnist";
  pack_dataset(*memory_dataset(ims, {0, 1, 2, 0, 1, 2}, {"x", "y", "z"}), dir + "/train.simclr", o);
  pack_dataset(*memory_dataset({ims[0], ims[1]}, {2, 1}, {"x", "y", "z"}), dir + "/test.simclr", o);
  auto parse = [](const json& j) {
    json c = j;
    ConfigObject obj(c, "data");
    return parse_data_config(obj);
  };
  DataConfig c = parse({{"dataset", "packed"}, {"path", dir + "/train.simclr"}, {"test_path", dir + "/test.simclr"}});
  CHECK(c.dataset == "packed");
  CHECK(c.channels == 1);  // fashion-mnist's defaults, from the file
  CHECK(c.image_size == 28);
  CHECK(c.mean[0] == Approx(0.2860f));
  CHECK(c.augment.crop_scale_min == 0.2);
  CHECK(c.augment.blur_p == 0.0);
  CHECK(has_split(c, "test"));
  auto tr = open_dataset(c, "train"), te = open_dataset(c, "test");
  CHECK(tr->size() == 6);
  CHECK(te->size() == 2);
  CHECK(te->get(0).label == 2);
  CHECK(data_config_to_json(c)["dataset"] == "packed");
  // the spelling
  DataConfig f = parse({{"format", "packed"}, {"path", dir + "/train.simclr"}});
  CHECK(f.dataset == "packed");
  CHECK(!has_split(f, "test"));
  CHECK_THROWS_WITH(check_data_paths(f, "test"), Catch::Contains("data.test_path"));
  CHECK_THROWS_WITH(parse({{"format", "packed"}, {"dataset", "idx"}}), Catch::Contains("'data.format' is \"packed\""));
  CHECK_THROWS_WITH(parse({{"format", "zip"}}), Catch::Contains("data.format"));
  // a missing file: the config still parses (image-folder defaults), the paths check names it
  DataConfig m = parse({{"dataset", "packed"}, {"path", dir + "/none.simclr"}});
  CHECK(m.channels == 3);
  CHECK_THROWS_WITH(open_dataset(m, "train"), Catch::Contains("none.simclr") && Catch::Contains("does not exist"));
  // one path, detected by its magic (simclr embed --data, eval --data)
  auto d = open_dataset_path(dir + "/train.simclr", 3, false);
  CHECK(d->channels() == 3);
  CHECK(d->size() == 6);
  CHECK(d->get(5).image.pixels == convert_channels(ims[5], 3).pixels);
  // simclr eval / finetune --data FILE [--test-data FILE]: detected as packed
  json root = {{"data", {{"dataset", "fashion-mnist"}, {"subset", 100}}}};
  apply_transfer_data(root, dir + "/train.simclr", "", dir + "/test.simclr");
  CHECK(root["data"]["dataset"] == "packed");
  CHECK(root["data"]["path"] == dir + "/train.simclr");
  CHECK(root["data"]["test_path"] == dir + "/test.simclr");
  CHECK(root["data"]["subset"] == 0);
}

TEST_CASE("packed: training from a packed Fashion-MNIST subset gives exactly the source's losses", "[packed]") {
  const char* env = std::getenv("SIMCLR_TEST_FMNIST");
  const std::string fm = env ? env : "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(fm + "/train-images-idx3-ubyte.gz")) SIMCLR_SKIP("Fashion-MNIST is not installed at " + fm);
  const std::string dir = test::scratch_dir("packed_train");
  auto config = [&](const std::string& run, bool packed) {
    json j = quickstart_config();
    if (packed) {
      j["data"]["dataset"] = "packed";  // the quickstart's augment keys kept; the rest from the file's source
      j["data"]["path"] = dir + "/fm.simclr";
    } else {
      j["data"]["path"] = fm;
      j["data"]["subset"] = 128;
    }
    j["data"]["workers"] = 1;
    j["model"]["width"] = 0.0625;
    j["train"]["epochs"] = 2;
    j["train"]["batch"] = 32;
    j["train"]["run_dir"] = dir + "/" + run;
    j["train"]["log_interval"] = 1;
    j["train"]["threads"] = 1;
    j["eval"]["knn_every"] = 0;
    j["eval"]["linear_at_end"] = false;
    j["eval"]["raw_pixels"] = false;
    j["eval"]["random_init"] = false;
    return parse_run_config(j);
  };
  RunConfig src = config("src", false);
  // what simclr pack --from <fmnist folder> --subset 128 writes
  PackSource s = open_pack_source(fm, "", "train", 0, false, "");
  REQUIRE(s.kind == "fashion-mnist");
  PackOptions o;
  o.source_kind = s.kind;
  pack_dataset(*subset(s.ds, 128), dir + "/fm.simclr", o);
  RunConfig pk = config("pk", true);
  // the packed config resolves to the same data settings (defaults from the recorded source)
  json a = data_config_to_json(src.data), b = data_config_to_json(pk.data);
  for (const char* k : {"dataset", "path", "subset"}) a.erase(k), b.erase(k);
  CHECK(a.dump() == b.dump());
  TrainOptions quiet;
  quiet.out = nullptr;
  TrainResult ra = train(src, quiet), rb = train(pk, quiet);
  REQUIRE(ra.losses.size() == 8);
  REQUIRE(rb.losses.size() == 8);
  for (size_t i = 0; i < ra.losses.size(); i++) {
    INFO("step " << i);
    CHECK(rb.losses[i].second == ra.losses[i].second);  // exactly
  }
}
