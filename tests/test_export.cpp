// tests/test_export.cpp - export_encoder and simclr embed: a checkpoint
// exported (safetensors and raw, fp32/bf16/fp16, with and without the head)
// and loaded back gives bit-identical embeddings; the OHWI -> OIHW layout
// change checked element by element against the checkpoint; the safetensors
// bytes read by hand; the manifest's fields; embed's features against a direct
// forward of hand-normalised pixels; corrupt inputs and unwritable outputs give
// their documented errors and leave no partial file.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "helpers.h"
#include "train/checkpoint.h"
#include "train/embed.h"
#include "train/export.h"
#include "engine/fileio.h"
#include "train/npy.h"
#include "train/safetensors.h"
#include "train/trainer.h"
#include "tools/cli/embed_cli.h"
#include "tools/cli/export_cli.h"

using namespace simclr;
namespace fs = std::filesystem;

namespace {

// A small run config: ResNet-18 CIFAR stem or ResNet-50 ImageNet stem (the
// max-pool and bottleneck paths), 3 channels, 16 x 16 (32 x 32 for the
// ImageNet stem) inputs.
RunConfig small_config(bool r50) {
  json j = quickstart_config();
  j["model"]["arch"] = r50 ? "resnet50" : "resnet18";
  j["model"]["width"] = r50 ? 0.0625 : 0.125;
  j["model"]["stem"] = r50 ? "imagenet" : "cifar";
  j["data"]["channels"] = 3;
  j["data"]["image_size"] = r50 ? 32 : 16;
  j["data"]["mean"] = {0.4, 0.5, 0.6};
  j["data"]["std"] = {0.2, 0.25, 0.3};
  return parse_run_config(j);
}

// A model with random weights and non-trivial BN statistics (so eval-mode BN
// is not the identity), saved as a checkpoint at step 42 with loss 3.25 and
// one evaluation line in metrics.jsonl beside it.
struct Saved {
  std::string path;
  RunConfig cfg;
  std::unique_ptr<SimclrModel> model;
};

Saved save_model(const std::string& dir, bool r50, uint64_t seed = 7) {
  Saved s;
  s.cfg = small_config(r50);
  s.model = std::make_unique<SimclrModel>(s.cfg.model, &s.cfg.head);
  s.model->init(seed);
  uint64_t k = seed * 1000;
  for (Param& p : s.model->store.params()) {
    const std::string& n = p.name;
    auto ends = [&](const char* x) { return n.size() >= std::strlen(x) && n.compare(n.size() - std::strlen(x), std::string::npos, x) == 0; };
    if (ends("num_batches_tracked")) p.value.fill(7);
    else if (ends("running_var")) p.value.copy_from(test::rand_tensor(p.shape, ++k, 0.5, 2.0));
    else if (ends("running_mean") || (p.flags & kIsBN)) p.value.copy_from(test::rand_tensor(p.shape, ++k, -0.5, 0.5));
  }
  Checkpoint c;
  c.meta["format"] = "simclr-checkpoint";
  c.meta["engine"] = {{"version", SIMCLR_VERSION}, {"commit", SIMCLR_GIT_COMMIT}};
  c.meta["arch"] = model_arch_json(s.cfg, *s.model);
  c.meta["config"] = run_config_to_json(s.cfg);
  c.meta["state"] = {{"step", 42}, {"epoch", 1}};
  c.meta["metrics"] = {{"loss", 3.25}};
  add_model_tensors(c, s.model->store);
  s.path = dir + "/checkpoint-000000042.ckpt";
  save_checkpoint(s.path, c);
  std::ofstream(dir + "/metrics.jsonl") << json({{"eval", "linear"}, {"step", 42}, {"top1", 0.5}}).dump() << "\n"
                                        << json({{"eval", "knn"}, {"step", 7}, {"top1", 0.1}}).dump() << "\n";
  return s;
}

Tensor input_for(const RunConfig& c, int64_t n, uint64_t seed) {
  return test::rand_tensor({n, c.data.image_size, c.data.image_size, 3}, seed, -2, 2, DType::f32);
}

Tensor embed(ResNet& r, const Tensor& x) {
  NoGrad ng;
  return r.forward(x, /*training=*/false);
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

// The error message of f(), or "" when it does not throw.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

uint64_t le64(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

int run_main(int (*fn)(int, char**), std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return fn(static_cast<int>(argv.size()), argv.data());
}

void write_be32(std::ofstream& f, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

}  // namespace

TEST_CASE("export: safetensors and raw exports reload into the engine with identical embeddings", "[export]") {
  for (bool r50 : {false, true}) {
    const std::string dir = test::scratch_dir(r50 ? "export_rt50" : "export_rt18");
    Saved s = save_model(dir, r50);
    const Tensor x = input_for(s.cfg, 3, 11);
    const Tensor want = embed(*s.model->encoder, x);
    REQUIRE(want.size(1) == s.model->encoder->feature_dim());

    ExportOptions st;
    ExportResult r = export_checkpoint(s.path, dir + "/enc.safetensors", st);
    CHECK(r.manifest_path == dir + "/enc.json");
    ExportOptions raw;
    raw.format = "raw";
    export_checkpoint(s.path, dir + "/enc.bin", raw);
    ExportOptions head;
    head.with_head = true;
    export_checkpoint(s.path, dir + "/head.safetensors", head);

    for (const std::string& p : {dir + "/enc.safetensors", dir + "/enc.bin", dir + "/enc.json",
                                 dir + "/head.safetensors", s.path}) {
      INFO(p);
      std::unique_ptr<LoadedEncoder> le = load_encoder(p);
      CHECK(le->model.depth == s.cfg.model.depth);
      CHECK(le->model.stem == s.cfg.model.stem);
      CHECK(le->data.image_size == s.cfg.data.image_size);
      CHECK(le->data.mean == s.cfg.data.mean);
      CHECK(le->data.std == s.cfg.data.std);
      // Every parameter and buffer restored bit for bit, hence identical embeddings.
      for (const Param& q : le->store.params()) {
        INFO(q.name);
        CHECK(bit_equal(q.value, s.model->store[q.name]));
      }
      CHECK(bit_equal(embed(*le->encoder, x), want));
    }
    // What `simclr eval` reads from an export: the training config and the step.
    std::string kind;
    Checkpoint back = load_checkpoint_or_export(dir + "/enc.safetensors", &kind);
    CHECK(kind == "safetensors");
    CHECK(back.meta["config"] == run_config_to_json(s.cfg));
    CHECK(back.meta["state"]["step"] == 42);
    Checkpoint back_head = load_checkpoint_or_export(dir + "/head.safetensors");
    const CheckpointTensor* h0 = back_head.find("head.0.weight");
    REQUIRE(h0 != nullptr);
    CHECK((h0->flags & kIsHead));
    CHECK(bit_equal(h0->tensor, s.model->store["head.0.weight"]));
  }
}

TEST_CASE("export: torchvision names, OHWI -> OIHW element by element, BN tensors, int64 counters", "[export]") {
  const std::string dir = test::scratch_dir("export_layout");
  Saved s = save_model(dir, /*r50=*/true);
  export_checkpoint(s.path, dir + "/enc.safetensors", ExportOptions{});
  const Safetensors st = load_safetensors(dir + "/enc.safetensors");
  const Checkpoint ck = load_checkpoint(s.path);

  size_t encoder_tensors = 0, convs = 0;
  for (const CheckpointTensor* t : ck.group("model")) {
    if (t->flags & kIsHead) {
      CHECK(st.find(t->name) == nullptr);
      CHECK(st.find(std::string(kExportHeadPrefix) + t->name.substr(5)) == nullptr);
      continue;
    }
    encoder_tensors++;
    INFO(t->name);
    const SafetensorsEntry* e = st.find(t->name);
    REQUIRE(e != nullptr);
    const Tensor& a = t->tensor;  // ours
    const Tensor& b = e->tensor;  // exported
    if (t->name.find("num_batches_tracked") != std::string::npos) {
      CHECK(b.dtype() == DType::i64);
      CHECK(b.ndim() == 0);
      CHECK(b.data<int64_t>()[0] == 7);
    } else if (a.ndim() == 4) {
      convs++;
      const int64_t O = a.size(0), KH = a.size(1), KW = a.size(2), I = a.size(3);
      REQUIRE(b.shape() == Shape({O, I, KH, KW}));
      REQUIRE(b.dtype() == DType::f32);
      const float* pa = a.data<float>();
      const float* pb = b.data<float>();
      int64_t bad = 0;
      for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
          for (int64_t h = 0; h < KH; h++)
            for (int64_t w = 0; w < KW; w++)
              bad += pb[((o * I + i) * KH + h) * KW + w] != pa[((o * KH + h) * KW + w) * I + i];
      CHECK(bad == 0);
    } else {
      CHECK(bit_equal(a, b));  // BN weight/bias/running stats [C]
    }
  }
  CHECK(st.tensors.size() == encoder_tensors);
  CHECK(convs == 53);  // ResNet-50: stem + 16 blocks x 3 + 4 downsample convs
  // torchvision names of a bottleneck's projection shortcut and the stem.
  for (const char* n : {"conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias",
                        "layer4.2.conv3.weight", "layer4.2.bn3.num_batches_tracked"})
    CHECK(st.find(n) != nullptr);
  CHECK(st.find("fc.weight") == nullptr);
  CHECK(st.find("conv1.weight")->tensor.shape() == Shape({4, 3, 7, 7}));
}

TEST_CASE("export: bf16 and fp16 round every float to nearest even, counters stay int64", "[export]") {
  const std::string dir = test::scratch_dir("export_dtypes");
  Saved s = save_model(dir, /*r50=*/false);
  const Checkpoint ck = load_checkpoint(s.path);
  for (DType dt : {DType::bf16, DType::f16}) {
    ExportOptions o;
    o.dtype = dt;
    const std::string out = dir + "/enc_" + export_dtype_name(dt) + ".safetensors";
    ExportResult r = export_checkpoint(s.path, out, o);
    CHECK(r.manifest["dtype"] == export_dtype_name(dt));
    const Safetensors st = load_safetensors(out);
    std::unique_ptr<LoadedEncoder> le = load_encoder(out);
    for (const SafetensorsEntry& e : st.tensors) {
      INFO(e.name);
      const Tensor& ours = ck.find(e.name)->tensor;
      if (e.name.find("num_batches_tracked") != std::string::npos) {
        CHECK(e.tensor.dtype() == DType::i64);
        continue;
      }
      REQUIRE(e.tensor.dtype() == dt);
      // Compare in our OHWI layout after the reload: f32(round(x)) for every element.
      const float* src = ours.data<float>();
      const float* back = le->store[e.name].data<float>();
      int64_t bad = 0;
      for (int64_t i = 0; i < ours.numel(); i++) {
        const float want = dt == DType::bf16 ? static_cast<float>(bf16(src[i])) : static_cast<float>(f16(src[i]));
        bad += back[i] != want;
      }
      CHECK(bad == 0);
    }
    // bf16/fp16 weights move embeddings only by their rounding (~2^-8 / 2^-11 relative per weight).
    const Tensor x = input_for(s.cfg, 2, 5);
    const double err = test::rel_err(embed(*le->encoder, x), embed(*s.model->encoder, x));
    CHECK(err > 0);
    CHECK(err < (dt == DType::bf16 ? 0.1 : 0.01));
  }
  // Hand check of the rounding itself: 1 + 2^-8 + 2^-10 rounds up in bf16, 1 + 2^-9 ties to even (down).
  CHECK(bf16(1.0f + 0x1p-8f + 0x1p-10f).bits == 0x3f81);
  CHECK(bf16(1.0f + 0x1p-8f).bits == 0x3f80);
}

TEST_CASE("export: the manifest names architecture, input, normalisation, training and engine", "[export]") {
  const std::string dir = test::scratch_dir("export_manifest");
  Saved s = save_model(dir, /*r50=*/true);
  ExportOptions o;
  o.with_head = true;
  ExportResult r = export_checkpoint(s.path, dir + "/enc.safetensors", o);
  const json m = read_json_file(dir + "/enc.json");
  CHECK(m == r.manifest);
  CHECK(m["format"] == "simclr-encoder");
  CHECK(m["architecture"] == "resnet50");
  CHECK(m["model"]["width"] == 0.0625);
  CHECK(m["model"]["stem"] == "imagenet");
  CHECK(m["model"]["in_channels"] == 3);
  CHECK(m["feature_dim"] == 128);  // round(512 / 16) * 4
  CHECK(m["input"]["image_size"] == 32);
  CHECK(m["input"]["mean"].get<std::vector<float>>() == std::vector<float>{0.4f, 0.5f, 0.6f});
  CHECK(m["input"]["std"].get<std::vector<float>>() == std::vector<float>{0.2f, 0.25f, 0.3f});
  CHECK(m["training"]["config"] == run_config_to_json(s.cfg));
  CHECK(m["training"]["config_hash"] == config_hash(run_config_to_json(s.cfg)));
  CHECK(m["training"]["final_loss"] == 3.25);
  CHECK(m["training"]["step"] == 42);
  REQUIRE(m["evaluation"].size() == 1);  // only the line of step 42
  CHECK(m["evaluation"][0]["top1"] == 0.5);
  CHECK(m["engine"]["version"] == SIMCLR_VERSION);
  CHECK(m["engine"]["commit"] == SIMCLR_GIT_COMMIT);
  CHECK(m["file"] == "enc.safetensors");
  CHECK(m["with_head"] == true);
  CHECK(m["head"]["prefix"] == kExportHeadPrefix);
  // The tensor list matches the file; the head is there under its prefix.
  const Safetensors st = load_safetensors(dir + "/enc.safetensors");
  REQUIRE(m["tensors"].size() == st.tensors.size());
  CHECK(st.find("projection_head.0.weight") != nullptr);
  CHECK(st.find("projection_head.0.weight")->tensor.shape() == Shape({128, 128}));  // [out, in]
  // The manifest travels inside the file too.
  json embedded = json::parse(st.metadata.at("simclr_manifest"));
  json without = m;
  without.erase("tensors");
  CHECK(embedded == without);
  CHECK(st.metadata.at("format") == "pt");
  // The hash is FNV-1a 64 of the compact JSON: the empty object "{}".
  CHECK(config_hash(json::object()) == "fnv1a64:08f44b07b5901a25");
}

TEST_CASE("safetensors: byte layout read by hand, scalars, 8-byte header padding", "[export]") {
  Safetensors st;
  st.metadata["k"] = "v";
  st.tensors.push_back({"a", Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3})});
  Tensor sc = Tensor::empty(Shape{}, DType::i64);
  sc.data<int64_t>()[0] = -5;
  st.tensors.push_back({"b", sc});
  const std::string s = safetensors_to_bytes(st);
  const uint64_t n = le64(s, 0);
  CHECK(n % 8 == 0);
  REQUIRE(s.size() == 8 + n + 24 + 8);
  const json h = json::parse(s.substr(8, n));
  CHECK(h["a"]["dtype"] == "F32");
  CHECK(h["a"]["shape"] == json({2, 3}));
  CHECK(h["a"]["data_offsets"] == json({0, 24}));
  CHECK(h["b"]["dtype"] == "I64");
  CHECK(h["b"]["shape"] == json::array());
  CHECK(h["b"]["data_offsets"] == json({24, 32}));
  CHECK(h["__metadata__"]["k"] == "v");
  float f[6];
  std::memcpy(f, s.data() + 8 + n, 24);
  CHECK(f[5] == 6.0f);
  int64_t b;
  std::memcpy(&b, s.data() + 8 + n + 24, 8);
  CHECK(b == -5);
  const Safetensors back = safetensors_from_bytes(s, "mem");
  CHECK(back.metadata.at("k") == "v");
  CHECK(bit_equal(back.find("a")->tensor, st.tensors[0].tensor));
  CHECK(back.find("b")->tensor.ndim() == 0);
  CHECK(back.find("b")->tensor.at(0) == -5);
}

TEST_CASE("safetensors: corrupt files give errors naming the problem", "[export]") {
  Safetensors st;
  st.tensors.push_back({"a", Tensor::from_vector<float>({1, 2, 3, 4}, {4})});
  st.tensors.push_back({"b", Tensor::from_vector<float>({5, 6}, {2})});
  const std::string good = safetensors_to_bytes(st);
  const uint64_t n = le64(good, 0);
  auto with_header = [&](const std::string& header, size_t data_bytes) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; i++) s[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return s + header + std::string(data_bytes, '\0');
  };
  auto err = [](const std::string& bytes) { return error_of([&] { safetensors_from_bytes(bytes, "x.safetensors"); }); };
  CHECK_THAT(err(good.substr(0, 5)), Catch::Contains("safetensors 'x.safetensors': truncated"));
  CHECK_THAT(err(good.substr(0, good.size() - 1)), Catch::Contains("outside the data buffer"));
  CHECK_THAT(err(good + "xx"), Catch::Contains("2 bytes after the last tensor"));
  std::string huge = good;
  huge[7] = 1;
  CHECK_THAT(err(huge), Catch::Contains("implausible"));
  std::string longer = good;
  longer[0] = static_cast<char>(n + 16);
  CHECK_THAT(err(longer.substr(0, 8 + n + 8)), Catch::Contains("does not fit"));
  CHECK_THAT(err(with_header("{\"a\": ", 0)), Catch::Contains("unreadable JSON header"));
  CHECK_THAT(err(with_header("[1, 2]", 0)), Catch::Contains("not a JSON object"));
  CHECK_THAT(err(with_header(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("tensor 'a' has dtype \"F64\""));
  CHECK_THAT(err(with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("do not match its shape"));
  CHECK_THAT(err(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
             Catch::Contains("overlapping or missing"));
  CHECK_THAT(err(with_header(R"({"a":{"dtype":"F32","shape":[2]}})", 8)), Catch::Contains("needs dtype, shape and data_offsets"));
  CHECK_THAT(err(with_header(R"({"__metadata__":{"k":1}})", 0)), Catch::Contains("is not a string"));
  CHECK_THAT(error_of([] { load_safetensors("/nonexistent/x.safetensors"); }), Catch::Contains("no such file"));
}

TEST_CASE("export: bad checkpoints, options and unwritable outputs give errors and leave no file", "[export]") {
  const std::string dir = test::scratch_dir("export_errors");
  Saved s = save_model(dir, /*r50=*/false);
  const std::string out_dir = dir + "/out";
  fs::create_directories(out_dir);
  const std::string out = out_dir + "/enc.safetensors";

  CHECK_THAT(error_of([&] { export_checkpoint(dir + "/missing.ckpt", out, {}); }),
             Catch::Contains("checkpoint '" + dir + "/missing.ckpt': no such file"));
  std::string bytes = read_file(s.path);
  bytes[bytes.size() / 2] ^= 0x5a;
  write_file_atomic(dir + "/corrupt.ckpt", bytes);
  CHECK_THAT(error_of([&] { export_checkpoint(dir + "/corrupt.ckpt", out, {}); }),
             Catch::Contains("checksum mismatch"));
  write_file_atomic(dir + "/foreign.ckpt", "hello, this is not a checkpoint");
  CHECK_THAT(error_of([&] { export_checkpoint(dir + "/foreign.ckpt", out, {}); }), Catch::Contains("bad magic"));
  write_file_atomic(dir + "/cut.ckpt", read_file(s.path).substr(0, 100));
  CHECK_THAT(error_of([&] { export_checkpoint(dir + "/cut.ckpt", out, {}); }), Catch::Contains("checkpoint '"));
  ExportOptions onnx;
  onnx.format = "onnx";
  CHECK_THAT(error_of([&] { export_checkpoint(s.path, out, onnx); }), Catch::Contains("unknown format 'onnx'"));
  CHECK_THAT(error_of([] { export_dtype_from_name("fp8"); }), Catch::Contains("unknown dtype 'fp8'"));
  CHECK(files_in(out_dir).empty());

  // Unwritable outputs: a missing folder, a path under a regular file, a folder,
  // a .json name, the checkpoint itself.
  CHECK_THAT(error_of([&] { export_checkpoint(s.path, dir + "/nope/enc.safetensors", {}); }),
             Catch::Contains("folder '" + dir + "/nope' does not exist"));
  CHECK_THAT(error_of([&] { export_checkpoint(s.path, s.path + "/enc.safetensors", {}); }),
             Catch::Contains("is not a folder"));
  CHECK_THAT(error_of([&] { export_checkpoint(s.path, out_dir, {}); }), Catch::Contains("it is a folder"));
  CHECK_THAT(error_of([&] { export_checkpoint(s.path, out_dir + "/enc.json", {}); }),
             Catch::Contains("the manifest's name"));
  const std::string before = read_file(s.path);
  CHECK_THAT(error_of([&] { export_checkpoint(s.path, s.path, {}); }), Catch::Contains("would overwrite the checkpoint"));
  CHECK(read_file(s.path) == before);
  // The manifest cannot be written (a folder holds its name): the weights file
  // written just before is removed again, no temporary file stays.
  fs::create_directories(out_dir + "/enc.json");
  CHECK_THAT(error_of([&] { export_checkpoint(s.path, out, {}); }), Catch::Contains("cannot write '" + out_dir + "/enc.json'"));
  CHECK(files_in(out_dir) == std::vector<std::string>{"enc.json"});
  fs::remove(out_dir + "/enc.json");
  // A checkpoint of another architecture than its config says.
  Checkpoint ck = load_checkpoint(s.path);
  ck.meta["config"]["model"]["arch"] = "resnet34";
  save_checkpoint(dir + "/wrong.ckpt", ck);
  CHECK_THAT(error_of([&] { export_checkpoint(dir + "/wrong.ckpt", out, {}); }), Catch::Contains("has no tensor 'layer1.2.conv1.weight'"));
  ck = load_checkpoint(s.path);
  ck.meta.erase("config");
  save_checkpoint(dir + "/noconfig.ckpt", ck);
  CHECK_THAT(error_of([&] { export_checkpoint(dir + "/noconfig.ckpt", out, {}); }), Catch::Contains("holds no training config"));
  CHECK(files_in(out_dir).empty());

  // The command line.
  CHECK_THAT(error_of([&] { run_main(export_encoder_main, {"export_encoder", s.path}); }), Catch::Contains("no output given"));
  CHECK_THAT(error_of([&] { run_main(export_encoder_main, {"export_encoder", "--out", out}); }), Catch::Contains("no checkpoint given"));
  CHECK_THAT(error_of([&] { run_main(export_encoder_main, {"export_encoder", s.path, "--out", out, "--fast"}); }),
             Catch::Contains("unknown option '--fast'"));
  CHECK_THAT(error_of([&] { run_main(export_encoder_main, {"export_encoder", s.path, "--out", out, "--format", "npz"}); }),
             Catch::Contains("unknown format 'npz'"));
  CHECK_THAT(error_of([&] { run_main(export_encoder_main, {"export_encoder", s.path, "--out", out, "--dtype", "int8"}); }),
             Catch::Contains("unknown dtype 'int8'"));
  CHECK_THAT(error_of([&] { run_main(export_encoder_main, {"export_encoder", s.path, "--out"}); }), Catch::Contains("--out needs a value"));
  CHECK(files_in(out_dir).empty());
  CHECK(run_main(export_encoder_main, {"export_encoder", s.path, "--out", out, "--dtype", "bf16", "--with-head"}) == 0);
  CHECK(files_in(out_dir) == std::vector<std::string>{"enc.json", "enc.safetensors"});
}

TEST_CASE("export: corrupt or foreign exports are clear errors when loaded", "[export]") {
  const std::string dir = test::scratch_dir("export_import_errors");
  Saved s = save_model(dir, /*r50=*/false);
  ExportOptions raw;
  raw.format = "raw";
  export_checkpoint(s.path, dir + "/enc.safetensors", {});
  // A safetensors file without our manifest and none beside it.
  Safetensors plain;
  plain.tensors.push_back({"conv1.weight", Tensor::zeros({2, 3, 3, 3})});
  save_safetensors(dir + "/plain.safetensors", plain);
  CHECK_THAT(error_of([&] { load_encoder(dir + "/plain.safetensors"); }), Catch::Contains("has no simclr manifest"));
  // A truncated safetensors export.
  const std::string full = read_file(dir + "/enc.safetensors");
  write_file_atomic(dir + "/cut.safetensors", full.substr(0, full.size() - 10));
  CHECK_THAT(error_of([&] { load_encoder(dir + "/cut.safetensors"); }), Catch::Contains("outside the data buffer"));
  // A raw export with its manifest beside it, then truncated.
  fs::create_directories(dir + "/raw");
  export_checkpoint(s.path, dir + "/raw/enc.bin", raw);
  CHECK(load_encoder(dir + "/raw/enc.bin")->kind == "raw");
  const std::string rb = read_file(dir + "/raw/enc.bin");
  write_file_atomic(dir + "/raw/enc.bin", rb.substr(0, rb.size() - 64));
  CHECK_THAT(error_of([&] { load_encoder(dir + "/raw/enc.bin"); }), Catch::Contains("its manifest says"));
  // Something else entirely.
  write_file_atomic(dir + "/notes.txt", "just text");
  CHECK_THAT(error_of([&] { load_encoder(dir + "/notes.txt"); }),
             Catch::Contains("is neither a simclr checkpoint nor a .safetensors export"));
  CHECK_THAT(error_of([&] { load_encoder(dir + "/missing.safetensors"); }), Catch::Contains("no such file"));
  // An export whose tensors do not match its manifest's architecture.
  Safetensors st = load_safetensors(dir + "/enc.safetensors");
  st.tensors.erase(st.tensors.begin() + 1);
  save_safetensors(dir + "/partial.safetensors", st);
  CHECK_THAT(error_of([&] { load_encoder(dir + "/partial.safetensors"); }), Catch::Contains("does not match the model"));
}

TEST_CASE("embed: features of an IDX file and a packed .npy equal a direct forward of normalised pixels", "[export]") {
  const std::string dir = test::scratch_dir("export_embed");
  Saved s = save_model(dir, /*r50=*/false);
  export_checkpoint(s.path, dir + "/enc.safetensors", {});
  const int N = 5, S = 16, C = 3;
  std::vector<uint8_t> pix(static_cast<size_t>(N) * S * S * C);
  std::mt19937 g(3);
  for (uint8_t& p : pix) p = static_cast<uint8_t>(g() & 0xff);
  {
    std::ofstream f(dir + "/t10k-images-idx3-ubyte", std::ios::binary);
    write_be32(f, 0x00000804);
    for (uint32_t d : {N, S, S, C}) write_be32(f, d);
    f.write(reinterpret_cast<const char*>(pix.data()), static_cast<std::streamsize>(pix.size()));
    std::ofstream l(dir + "/t10k-labels-idx1-ubyte", std::ios::binary);
    write_be32(l, 0x00000801);
    write_be32(l, N);
    for (int i = 0; i < N; i++) l.put(static_cast<char>(i % 3));
  }
  Tensor packed = Tensor::empty({N, S, S, C}, DType::u8);
  std::memcpy(packed.data_ptr(), pix.data(), pix.size());
  write_npy(dir + "/packed.npy", packed);

  // The reference: (p / 255 - mean[c]) / std[c], NHWC, through the original model.
  Tensor x = Tensor::empty({N, S, S, C}, DType::f32);
  for (size_t i = 0; i < pix.size(); i++) {
    const int c = static_cast<int>(i % C);
    x.data<float>()[i] = (static_cast<float>(pix[i]) / 255.f - s.cfg.data.mean[c]) / s.cfg.data.std[c];
  }
  const Tensor want = embed(*s.model->encoder, x);

  CHECK(run_main(cmd_embed, {"embed", "--weights", dir + "/enc.safetensors", "--data", dir + "/t10k-images-idx3-ubyte",
                             "--out", dir + "/f.npy", "--labels-out", dir + "/l.npy", "--batch", "2"}) == 0);
  const Tensor f = read_npy(dir + "/f.npy");
  REQUIRE(f.dtype() == DType::f32);
  REQUIRE(f.shape() == want.shape());
  CHECK(test::rel_err(f, want) < 1e-5);  // batch 2 vs 5: the same maths in another grouping
  const Tensor l = read_npy(dir + "/l.npy");
  REQUIRE(l.dtype() == DType::i64);
  CHECK(std::vector<double>{l.at(0), l.at(1), l.at(2), l.at(3), l.at(4)} == std::vector<double>{0, 1, 2, 0, 1});

  CHECK(run_main(cmd_embed, {"embed", "--weights", s.path, "--data", dir + "/packed.npy", "--out", dir + "/g.npy",
                             "--labels-out", dir + "/m.npy"}) == 0);
  CHECK(test::rel_err(read_npy(dir + "/g.npy"), want) < 1e-5);
  CHECK(read_npy(dir + "/m.npy").at(0) == -1);

  // Errors: missing flags, inputs and output folders; nothing written.
  const std::string w = dir + "/enc.safetensors", d = dir + "/packed.npy";
  CHECK_THAT(error_of([&] { run_main(cmd_embed, {"embed", "--data", d, "--out", dir + "/x.npy"}); }),
             Catch::Contains("--weights FILE is required"));
  CHECK_THAT(error_of([&] { run_main(cmd_embed, {"embed", "--weights", w, "--data", dir + "/none", "--out", dir + "/x.npy"}); }),
             Catch::Contains("'" + dir + "/none' does not exist"));
  CHECK_THAT(error_of([&] { run_main(cmd_embed, {"embed", "--weights", w, "--data", d, "--out", dir + "/no/x.npy"}); }),
             Catch::Contains("folder '" + dir + "/no' does not exist"));
  CHECK_THAT(error_of([&] { run_main(cmd_embed, {"embed", "--weights", w, "--data", d, "--out", w}); }),
             Catch::Contains("would overwrite an input"));
  CHECK_THAT(error_of([&] { run_main(cmd_embed, {"embed", "--weights", w, "--data", d, "--out", dir + "/x.npy", "--batch", "0"}); }),
             Catch::Contains("--batch expects an integer >= 1"));
  CHECK_THAT(error_of([&] { run_main(cmd_embed, {"embed", "--weights", dir + "/f.npy", "--data", d, "--out", dir + "/x.npy"}); }),
             Catch::Contains("is neither a simclr checkpoint"));
  CHECK(!fs::exists(dir + "/x.npy"));
}
