// tests/test_checkpoint.cpp - checkpoint round trip, corrupt / truncated /
// foreign / newer / mismatched files give their documented errors, the
// run-directory helpers skip bad checkpoints and keep the last M.
#include <filesystem>
#include <fstream>

#include "helpers.h"
#include "train/checkpoint.h"
#include "engine/fileio.h"
#include "models/head.h"
#include "models/resnet.h"

using namespace simclr;
namespace fs = std::filesystem;

namespace {
struct Model {
  ParamStore store;
  std::unique_ptr<ResNet> net;
  std::unique_ptr<ProjectionHead> head;
  Model(double width, uint64_t seed, int depth = 18) {
    ResNetConfig cfg;
    cfg.depth = depth;
    cfg.width = width;
    cfg.in_channels = 1;
    cfg.stem = "cifar";
    net = std::make_unique<ResNet>(cfg, store);
    head = std::make_unique<ProjectionHead>(HeadConfig{}, net->feature_dim(), store);
    store.materialize();
    net->init(seed);
    head->init(seed);
  }
};
Checkpoint make_ck(Model& m) {
  Checkpoint ck;
  ck.meta["state"] = {{"step", 42}, {"epoch", 2}};
  ck.meta["config"] = {{"train", {{"batch", 8}}}};
  add_model_tensors(ck, m.store);
  Tensor mom = simclr::test::rand_tensor({m.store.values().numel()}, 3, -1, 1, DType::f32);
  ck.tensors.push_back({"momentum", "optimizer", 0, mom});
  Tensor steps = Tensor::from_vector<int64_t>({7}, {1});
  ck.tensors.push_back({"steps", "optimizer", 0, steps});
  return ck;
}
void write_bytes(const std::string& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}
}  // namespace

TEST_CASE("checkpoint: round trip restores every tensor bit for bit", "[checkpoint]") {
  std::string dir = simclr::test::scratch_dir("ckpt_roundtrip");
  Model a(0.125, 1);
  a.store["bn1.running_mean"].fill(0.25);
  Checkpoint ck = make_ck(a);
  std::string path = checkpoint_path(dir, 42);
  CHECK(fs::path(path).filename() == "checkpoint-000000042.ckpt");
  save_checkpoint(path, ck);
  Checkpoint back = load_checkpoint(path);
  CHECK(back.meta["state"]["step"] == 42);
  CHECK(back.meta["config"]["train"]["batch"] == 8);
  REQUIRE(back.tensors.size() == ck.tensors.size());
  for (size_t i = 0; i < ck.tensors.size(); i++) {
    INFO(ck.tensors[i].name);
    CHECK(back.tensors[i].name == ck.tensors[i].name);
    CHECK(back.tensors[i].group == ck.tensors[i].group);
    CHECK(back.tensors[i].flags == ck.tensors[i].flags);
    CHECK(back.tensors[i].tensor.shape() == ck.tensors[i].tensor.shape());
    CHECK(back.tensors[i].tensor.dtype() == ck.tensors[i].tensor.dtype());
    CHECK(std::memcmp(back.tensors[i].tensor.data_ptr(), ck.tensors[i].tensor.data_ptr(),
                      ck.tensors[i].tensor.nbytes()) == 0);
  }
  CHECK(back.find("steps", "optimizer")->tensor.data<int64_t>()[0] == 7);
  CHECK(back.find("head.1.weight")->flags == (kTrainable | kIsBN | kIsHead));

  // load into another model with a different init: identical values afterwards
  Model b(0.125, 99);
  load_model_tensors(back, b.store);
  CHECK(std::memcmp(a.store.values().data_ptr(), b.store.values().data_ptr(), a.store.values().nbytes()) == 0);
  CHECK(std::memcmp(a.store.buffers().data_ptr(), b.store.buffers().data_ptr(), a.store.buffers().nbytes()) == 0);
}

TEST_CASE("checkpoint: corrupt, truncated, foreign, newer and missing files give clear errors", "[checkpoint]") {
  std::string dir = simclr::test::scratch_dir("ckpt_bad");
  Model a(0.0625, 1);
  std::string good = checkpoint_to_bytes(make_ck(a));
  const std::string p = dir + "/x.ckpt";

  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  write_bytes(p, flipped);
  CHECK_THROWS_WITH(load_checkpoint(p), Catch::Contains("checksum mismatch") && Catch::Contains("x.ckpt"));

  write_bytes(p, good.substr(0, good.size() - 1000));
  CHECK_THROWS_WITH(load_checkpoint(p), Catch::Contains("checkpoint '") &&
                                            (Catch::Contains("truncated") || Catch::Contains("checksum")));
  write_bytes(p, good.substr(0, 20));
  CHECK_THROWS_WITH(load_checkpoint(p), Catch::Contains("truncated"));
  write_bytes(p, "");
  CHECK_THROWS_WITH(load_checkpoint(p), Catch::Contains("not a simclr checkpoint"));
  write_bytes(p, "PK\x03\x04 a zip file, not ours........................");
  CHECK_THROWS_WITH(load_checkpoint(p), Catch::Contains("not a simclr checkpoint"));

  std::string newer = good;
  newer[8] = 9;  // version 9, CRC recomputed so only the version is wrong
  uint32_t c = crc32(newer.data(), newer.size() - 4);
  std::memcpy(&newer[newer.size() - 4], &c, 4);
  write_bytes(p, newer);
  CHECK_THROWS_WITH(load_checkpoint(p), Catch::Contains("format version 9 is not supported"));

  CHECK_THROWS_WITH(load_checkpoint(dir + "/nope.ckpt"), Catch::Contains("no such file"));
  CHECK_THROWS_WITH(load_checkpoint(dir), Catch::Contains("is a directory"));
}

TEST_CASE("checkpoint: a checkpoint of another architecture is a clear error", "[checkpoint]") {
  Model a(0.125, 1);
  Checkpoint ck = make_ck(a);
  Model wider(0.25, 1);
  CHECK_THROWS_WITH(load_model_tensors(ck, wider.store), Catch::Contains("conv1.weight") && Catch::Contains("shape"));
  Model deeper(0.125, 1, 34);
  CHECK_THROWS_WITH(load_model_tensors(ck, deeper.store), Catch::Contains("no tensor 'layer1.2.conv1.weight'"));
  // encoder-only store: the head tensors are extra unless skipped
  ParamStore enc;
  ResNetConfig cfg;
  cfg.width = 0.125;
  cfg.in_channels = 1;
  cfg.stem = "cifar";
  ResNet net(cfg, enc);
  enc.materialize();
  CHECK_THROWS_WITH(load_model_tensors(ck, enc), Catch::Contains("head.0.weight"));
  load_model_tensors(ck, enc, /*skip_head=*/true);
  CHECK(enc["conv1.weight"].at(5) == a.store["conv1.weight"].at(5));
}

TEST_CASE("checkpoint: latest good one is found past corrupt ones, and only the last M are kept", "[checkpoint]") {
  std::string dir = simclr::test::scratch_dir("ckpt_dir");
  Model a(0.0625, 1);
  Checkpoint ck = make_ck(a);
  for (int64_t step : {10, 20, 30}) {
    ck.meta["state"]["step"] = step;
    save_checkpoint(checkpoint_path(dir, step), ck);
  }
  write_bytes(dir + "/notes.txt", "not a checkpoint");
  CHECK(list_checkpoints(dir).size() == 3);
  // corrupt the newest, truncate the middle one
  std::string s30 = read_file(checkpoint_path(dir, 30));
  s30[100] ^= 1;
  write_bytes(checkpoint_path(dir, 30), s30);
  std::string s20 = read_file(checkpoint_path(dir, 20));
  write_bytes(checkpoint_path(dir, 20), s20.substr(0, s20.size() / 2));
  std::vector<std::string> skipped;
  Checkpoint got;
  std::string latest = latest_good_checkpoint(dir, &skipped, &got);
  CHECK(latest == checkpoint_path(dir, 10));
  CHECK(got.meta["state"]["step"] == 10);
  REQUIRE(skipped.size() == 2);
  CHECK_THAT(skipped[0], Catch::Contains("checkpoint-000000030.ckpt"));
  CHECK_THAT(skipped[1], Catch::Contains("checkpoint-000000020.ckpt"));

  // rotation keeps good checkpoints, not bad files: the two bad ones are set
  // aside as *.bad (never deleted) and the good one stays (issue 16)
  prune_checkpoints(dir, 2);
  auto left = list_checkpoints(dir);
  REQUIRE(left.size() == 1);
  CHECK(left[0] == checkpoint_path(dir, 10));
  CHECK(fs::exists(checkpoint_path(dir, 20) + ".bad"));
  CHECK(fs::exists(checkpoint_path(dir, 30) + ".bad"));
  CHECK(fs::exists(dir + "/notes.txt"));
  CHECK(latest_good_checkpoint(simclr::test::scratch_dir("ckpt_empty"), nullptr).empty());
}
