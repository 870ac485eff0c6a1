// train/export.cpp - see export.h and docs/export.md.
#include "train/export.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/fileio.h"
#include "train/run_config.h"

namespace simclr {

namespace fs = std::filesystem;

namespace {
constexpr size_t kRawAlign = 64;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool is_head_tensor(const CheckpointTensor& t) { return (t.flags & kIsHead) || t.name.rfind("head.", 0) == 0; }

std::string export_name(const CheckpointTensor& t) {
  if (!is_head_tensor(t)) return t.name;
  const std::string n = t.name.rfind("head.", 0) == 0 ? t.name.substr(5) : t.name;
  return kExportHeadPrefix + n;
}

// x[O, kH, kW, I] -> y[O, I, kH, kW] (f32).
Tensor ohwi_to_oihw(const Tensor& x) {
  const int64_t O = x.size(0), KH = x.size(1), KW = x.size(2), I = x.size(3);
  Tensor src = x.to(DType::f32);
  Tensor y = Tensor::empty({O, I, KH, KW}, DType::f32);
  const float* s = src.data<float>();
  float* d = y.data<float>();
  for (int64_t o = 0; o < O; o++)
    for (int64_t h = 0; h < KH; h++)
      for (int64_t w = 0; w < KW; w++)
        for (int64_t i = 0; i < I; i++) d[((o * I + i) * KH + h) * KW + w] = s[((o * KH + h) * KW + w) * I + i];
  return y;
}

// x[O, I, kH, kW] -> y[O, kH, kW, I] (f32).
Tensor oihw_to_ohwi(const Tensor& x) {
  const int64_t O = x.size(0), I = x.size(1), KH = x.size(2), KW = x.size(3);
  Tensor src = x.to(DType::f32);
  Tensor y = Tensor::empty({O, KH, KW, I}, DType::f32);
  const float* s = src.data<float>();
  float* d = y.data<float>();
  for (int64_t o = 0; o < O; o++)
    for (int64_t i = 0; i < I; i++)
      for (int64_t h = 0; h < KH; h++)
        for (int64_t w = 0; w < KW; w++) d[((o * KH + h) * KW + w) * I + i] = s[((o * I + i) * KH + h) * KW + w];
  return y;
}

// The run config of a checkpoint's meta, parsed (defaults resolved).
RunConfig config_of(const json& meta, const std::string& where) {
  SIMCLR_CHECK(meta.contains("config") && meta["config"].is_object(), where,
               "holds no training config (meta.config), so its architecture is unknown");
  try {
    return parse_run_config(meta["config"]);
  } catch (const Error& e) {
    fail(where, "its training config does not parse: ", e.what());
  }
}

// The metrics.jsonl "eval" lines of `step` next to the checkpoint.
json evaluation_lines(const std::string& checkpoint_path, int64_t step) {
  json out = json::array();
  std::ifstream f(fs::path(checkpoint_path).parent_path() / "metrics.jsonl");
  std::string line;
  while (f && std::getline(f, line)) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("eval") || !j.contains("step")) continue;
    if (j["step"].is_number_integer() && j["step"].get<int64_t>() == step) out.push_back(j);
  }
  return out;
}

template <class T>
T meta_value(const json& meta, const char* section, const char* key, T def) {
  if (!meta.contains(section) || !meta[section].is_object()) return def;
  const json& s = meta[section];
  if (!s.contains(key)) return def;
  try {
    return s[key].get<T>();
  } catch (const json::exception&) {
    return def;
  }
}

std::string basename_of(const std::string& p) { return fs::path(p).filename().string(); }

json read_manifest_file(const std::string& path, const std::string& where) {
  json m;
  try {
    m = read_json_file(path);
  } catch (const Error& e) {
    fail(where, "cannot read its manifest: ", e.what());
  }
  SIMCLR_CHECK(m.is_object() && m.value("format", "") == "simclr-encoder", where, "'", path,
               "' is not a simclr encoder manifest (format != \"simclr-encoder\")");
  return m;
}

// An export's tensors (torchvision layout) -> a Checkpoint in our layouts.
Checkpoint checkpoint_from_export(const std::vector<SafetensorsEntry>& tensors, const json& manifest,
                                  const std::string& where) {
  Checkpoint ck;
  ck.meta["format"] = "simclr-encoder-import";
  ck.meta["export"] = manifest;
  const json& tr = manifest.value("training", json::object());
  if (tr.contains("config")) ck.meta["config"] = tr["config"];
  ck.meta["state"] = {{"step", tr.value("step", int64_t{0})}, {"epoch", tr.value("epoch", int64_t{0})}};
  ck.meta["metrics"] = tr.value("metrics", json::object());
  if (manifest.contains("trained_with")) ck.meta["engine"] = manifest["trained_with"];
  const std::string head_prefix = kExportHeadPrefix;
  for (const SafetensorsEntry& e : tensors) {
    CheckpointTensor t;
    t.group = "model";
    const bool head = e.name.rfind(head_prefix, 0) == 0;
    t.name = head ? "head." + e.name.substr(head_prefix.size()) : e.name;
    const bool counter = ends_with(e.name, "num_batches_tracked");
    if (counter) {
      SIMCLR_CHECK(e.tensor.numel() == 1, where, "tensor '", e.name, "' should hold one count, has ",
                   e.tensor.numel());
      t.tensor = Tensor::empty({1}, DType::f32);
      t.tensor.data<float>()[0] = static_cast<float>(e.tensor.at(0));
      t.flags = kIsBuffer | kIsBN;
    } else {
      SIMCLR_CHECK(is_floating(e.tensor.dtype()), where, "tensor '", e.name, "' has dtype ",
                   dtype_name(e.tensor.dtype()), " (weights must be F32, BF16 or F16)");
      t.tensor = (e.tensor.ndim() == 4 && !head) ? oihw_to_ohwi(e.tensor) : e.tensor.to(DType::f32).clone();
      if (ends_with(e.name, "running_mean") || ends_with(e.name, "running_var")) t.flags = kIsBuffer | kIsBN;
      else t.flags = kTrainable;
    }
    if (head) t.flags |= kIsHead;
    ck.tensors.push_back(std::move(t));
  }
  return ck;
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}
}  // namespace

// ---------------------------------------------------------------- names and dtypes

DType export_dtype_from_name(const std::string& s) {
  if (s == "fp32" || s == "f32" || s == "float32") return DType::f32;
  if (s == "bf16" || s == "bfloat16") return DType::bf16;
  if (s == "fp16" || s == "f16" || s == "float16" || s == "half") return DType::f16;
  fail("unknown dtype '", s, "' (expected fp32, bf16 or fp16)");
}

const char* export_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "fp32";
    case DType::bf16: return "bf16";
    case DType::f16: return "fp16";
    default: fail("export: dtype ", dtype_name(t), " is not an export dtype (fp32, bf16, fp16)");
  }
}

std::string config_hash(const json& config) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(config.dump())));
  return std::string("fnv1a64:") + buf;
}

namespace {
// A manifest an earlier export wrote (safe to replace): a JSON object with
// the keys every manifest has.
bool is_export_manifest(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) > (64u << 20)) return false;
  try {
    const json j = json::parse(read_file(path));
    return j.is_object() && j.contains("source_checkpoint") && j.contains("architecture") && j.contains("tensors") &&
           j.contains("file_format");
  } catch (const std::exception&) {
    return false;
  }
}
}  // namespace

std::string manifest_path_for(const std::string& out) {
  fs::path p(out);
  SIMCLR_CHECK(p.extension() != ".json", "output '", out,
               "' ends in .json, the manifest's name (use e.g. encoder.safetensors or encoder.bin)");
  SIMCLR_CHECK(!p.filename().empty(), "output '", out, "' names no file");
  return p.replace_extension(".json").string();
}

// ---------------------------------------------------------------- export

std::vector<SafetensorsEntry> export_tensors(const Checkpoint& ck, const ExportOptions& opt) {
  export_dtype_name(opt.dtype);  // validates
  std::vector<SafetensorsEntry> out;
  for (const CheckpointTensor* t : ck.group("model")) {
    if (is_head_tensor(*t) && !opt.with_head) continue;
    SafetensorsEntry e;
    e.name = export_name(*t);
    if (ends_with(t->name, "num_batches_tracked")) {
      SIMCLR_CHECK(t->tensor.numel() == 1, "export: '", t->name, "' should hold one count, has ", t->tensor.numel());
      e.tensor = Tensor::empty(Shape{}, DType::i64);
      e.tensor.data<int64_t>()[0] = std::llround(t->tensor.at(0));
    } else if (t->tensor.ndim() == 4) {
      e.tensor = ohwi_to_oihw(t->tensor).to(opt.dtype);
    } else {
      e.tensor = t->tensor.to(DType::f32).to(opt.dtype).clone();
    }
    out.push_back(std::move(e));
  }
  return out;
}

json export_manifest(const Checkpoint& ck, const std::string& checkpoint_path, const ExportOptions& opt) {
  const std::string where = "checkpoint '" + checkpoint_path + "': ";
  const RunConfig c = config_of(ck.meta, where);
  ParamStore probe;
  ResNet net(c.model, probe);  // registers names only (no allocation): the feature dim
  json m;
  m["format"] = "simclr-encoder";
  m["manifest_version"] = kExportManifestVersion;
  m["architecture"] = "resnet" + std::to_string(c.model.depth);
  m["model"] = {{"depth", c.model.depth},         {"width", c.model.width},
                {"stem", c.model.stem},           {"in_channels", c.model.in_channels},
                {"bn_eps", c.model.bn_eps},       {"bn_momentum", c.model.bn_momentum}};
  m["feature_dim"] = net.feature_dim();
  m["input"] = {{"image_size", c.data.image_size},
                {"channels", c.data.channels},
                {"mean", c.data.mean},
                {"std", c.data.std},
                {"eval_crop_fraction", c.data.eval_crop_fraction},
                {"pixel_scale", "x / 255, then (x - mean) / std per channel"},
                {"layout", "NCHW for PyTorch (the engine itself runs NHWC)"}};
  m["dtype"] = export_dtype_name(opt.dtype);
  m["with_head"] = opt.with_head;
  if (opt.with_head)
    m["head"] = {{"prefix", kExportHeadPrefix}, {"depth", c.head.depth}, {"hidden", c.head.hidden},
                 {"out", c.head.out},           {"bn", c.head.bn}};
  m["naming"] =
      "torchvision ResNet state_dict names (no fc.*); conv weights OIHW; linear weights [out, in]; "
      "num_batches_tracked int64 scalars";
  const int64_t step = meta_value<int64_t>(ck.meta, "state", "step", 0);
  json training;
  training["config"] = ck.meta["config"];
  training["config_hash"] = config_hash(ck.meta["config"]);
  training["step"] = step;
  training["epoch"] = meta_value<int64_t>(ck.meta, "state", "epoch", 0);
  const json metrics = ck.meta.value("metrics", json::object());
  training["final_loss"] = metrics.contains("loss") ? metrics["loss"] : json(nullptr);
  training["metrics"] = metrics;
  m["training"] = training;
  m["evaluation"] = evaluation_lines(checkpoint_path, step);
  m["trained_with"] = ck.meta.value("engine", json::object());
  m["engine"] = {{"version", SIMCLR_VERSION}, {"commit", SIMCLR_GIT_COMMIT}};
  m["source_checkpoint"] = checkpoint_path;
  return m;
}

ExportResult export_checkpoint(const std::string& checkpoint_path, const std::string& out, const ExportOptions& opt) {
  SIMCLR_CHECK(opt.format == "safetensors" || opt.format == "raw", "unknown format '", opt.format,
               "' (expected safetensors or raw)");
  export_dtype_name(opt.dtype);
  const std::string manifest_path = manifest_path_for(out);
  // Never overwrite the checkpoint itself, and fail before any work when the
  // output folder is missing.
  std::error_code ec;
  SIMCLR_CHECK(!fs::equivalent(out, checkpoint_path, ec) && !fs::equivalent(manifest_path, checkpoint_path, ec),
               "output '", out, "' would overwrite the checkpoint");
  const fs::path dir = fs::path(out).parent_path();
  SIMCLR_CHECK(dir.empty() || fs::exists(dir, ec), "cannot write '", out, "': folder '", dir.string(),
               "' does not exist");
  SIMCLR_CHECK(dir.empty() || fs::is_directory(dir, ec), "cannot write '", out, "': '", dir.string(),
               "' is not a folder");
  SIMCLR_CHECK(!fs::is_directory(out, ec), "cannot write '", out, "': it is a folder");
  output_target(out);  // a device node, FIFO or socket is refused before any work (a symlink is written through)
  output_target(manifest_path);
  if (!opt.force && fs::exists(manifest_path, ec) && !is_export_manifest(manifest_path))
    fail("the manifest of '", out, "' would replace '", manifest_path,
         "', an existing file that is not an export manifest (a config?); pass --force to replace it, or choose "
         "another output name");

  const Checkpoint ck = load_checkpoint(checkpoint_path);
  const std::string where = "checkpoint '" + checkpoint_path + "': ";
  const RunConfig cfg = config_of(ck.meta, where);
  // The checkpoint must hold exactly the encoder its config describes.
  {
    ParamStore names;
    ResNet net(cfg.model, names);
    for (const Param& p : names.params()) {
      const CheckpointTensor* t = ck.find(p.name);
      SIMCLR_CHECK(t != nullptr, where, "has no tensor '", p.name, "' (its config says ", net.arch_name(), ")");
      SIMCLR_CHECK(t->tensor.shape() == p.shape, where, "'", p.name, "' has shape ", t->tensor.shape().str(),
                   ", its config implies ", p.shape.str());
    }
    for (const CheckpointTensor* t : ck.group("model"))
      SIMCLR_CHECK(is_head_tensor(*t) || names.find(t->name) != nullptr, where, "has tensor '", t->name,
                   "' which ", net.arch_name(), " does not");
  }
  if (opt.with_head) {
    bool any = false;
    for (const CheckpointTensor* t : ck.group("model")) any = any || is_head_tensor(*t);
    SIMCLR_CHECK(any, where, "holds no projection head (--with-head)");
  }

  ExportResult r;
  r.weights_path = out;
  r.manifest_path = manifest_path;
  r.manifest = export_manifest(ck, checkpoint_path, opt);
  std::vector<SafetensorsEntry> tensors = export_tensors(ck, opt);
  r.tensors = tensors.size();

  json list = json::array();
  std::string bytes;
  if (opt.format == "safetensors") {
    for (const SafetensorsEntry& e : tensors)
      list.push_back({{"name", e.name}, {"dtype", safetensors_dtype_name(e.tensor.dtype())}, {"shape", e.tensor.shape().vec()}});
  } else {
    size_t off = 0;
    for (const SafetensorsEntry& e : tensors) {
      list.push_back({{"name", e.name},
                      {"dtype", safetensors_dtype_name(e.tensor.dtype())},
                      {"shape", e.tensor.shape().vec()},
                      {"offset", off},
                      {"bytes", e.tensor.nbytes()}});
      off = (off + e.tensor.nbytes() + kRawAlign - 1) / kRawAlign * kRawAlign;
    }
    bytes.assign(off, '\0');
    for (size_t i = 0; i < tensors.size(); i++)
      if (tensors[i].tensor.nbytes() > 0)
        std::memcpy(&bytes[list[i]["offset"].get<size_t>()], tensors[i].tensor.data_ptr(), tensors[i].tensor.nbytes());
  }
  r.manifest["file"] = basename_of(out);
  r.manifest["file_format"] = opt.format;
  if (opt.format == "raw") {
    r.manifest["raw"] = {{"alignment", kRawAlign},
                         {"byte_order", "little"},
                         {"file_bytes", bytes.size()},
                         {"note", "each tensor: offset and bytes from the start of the file, row-major"}};
  }
  r.manifest["tensors"] = list;

  if (opt.format == "safetensors") {
    Safetensors st;
    json embedded = r.manifest;
    embedded.erase("tensors");  // the header lists them already
    st.metadata["format"] = "pt";
    st.metadata["simclr_manifest"] = embedded.dump();
    st.tensors = std::move(tensors);
    bytes = safetensors_to_bytes(st);
  }
  r.bytes = bytes.size();
  write_file_atomic(out, bytes);
  try {
    write_file_atomic(manifest_path, r.manifest.dump(2) + "\n");
  } catch (const Error&) {
    fs::remove(out, ec);
    throw;
  }
  return r;
}

// ---------------------------------------------------------------- import

Checkpoint load_checkpoint_or_export(const std::string& path, std::string* kind) {
  std::error_code ec;
  SIMCLR_CHECK(fs::exists(path, ec), "'", path, "': no such file");
  SIMCLR_CHECK(!fs::is_directory(path, ec), "'", path, "': is a folder (pass a checkpoint or an exported encoder)");
  std::string bytes = read_file(path);
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), "SIMCLRCK", 8) == 0) {
    if (kind) *kind = "checkpoint";
    return checkpoint_from_bytes(bytes, path);
  }
  if (looks_like_safetensors(bytes)) {
    const std::string where = "safetensors '" + path + "': ";
    Safetensors st = safetensors_from_bytes(bytes, path);
    json manifest;
    auto it = st.metadata.find("simclr_manifest");
    if (it != st.metadata.end()) {
      manifest = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
      SIMCLR_CHECK(manifest.is_object(), where, "__metadata__.simclr_manifest is not valid JSON");
    } else {
      std::string mp = fs::path(path).replace_extension(".json").string();
      SIMCLR_CHECK(fs::exists(mp, ec), where,
                   "has no simclr manifest (no __metadata__.simclr_manifest and no '", mp,
                   "' beside it), so the architecture is unknown");
      manifest = read_manifest_file(mp, where);
    }
    if (kind) *kind = "safetensors";
    return checkpoint_from_export(st.tensors, manifest, where);
  }
  // A raw export: its manifest (.json) or its weights file with the manifest beside it.
  const std::string where = "'" + path + "': ";
  std::string manifest_path, weights_path;
  if (fs::path(path).extension() == ".json") {
    manifest_path = path;
  } else {
    manifest_path = fs::path(path).replace_extension(".json").string();
    SIMCLR_CHECK(fs::exists(manifest_path, ec), where,
                 "is neither a simclr checkpoint nor a .safetensors export, and no raw-export manifest '",
                 manifest_path, "' is beside it");
  }
  json m = read_manifest_file(manifest_path, where);
  SIMCLR_CHECK(m.value("file_format", "") == "raw" && m.contains("tensors") && m["tensors"].is_array(), where,
               "manifest '", manifest_path, "' does not describe a raw export");
  weights_path = (fs::path(manifest_path).parent_path() / m.value("file", "")).string();
  const std::string raw = fs::path(path).extension() == ".json" ? read_file(weights_path) : std::move(bytes);
  const std::string wwhere = "raw export '" + weights_path + "': ";
  const uint64_t want = m.contains("raw") ? m["raw"].value("file_bytes", uint64_t{0}) : 0;
  SIMCLR_CHECK(raw.size() == want, wwhere, "has ", raw.size(), " bytes, its manifest says ", want,
               " (truncated or replaced?)");
  std::vector<SafetensorsEntry> tensors;
  try {
    for (const json& e : m["tensors"]) {
      SafetensorsEntry t;
      t.name = e.at("name").get<std::string>();
      const std::string dts = e.at("dtype").get<std::string>();
      DType dt = dts == "F32" ? DType::f32 : dts == "BF16" ? DType::bf16 : dts == "F16" ? DType::f16
               : dts == "I64" ? DType::i64 : (fail(wwhere, "tensor '", t.name, "' has dtype \"", dts, "\""), DType::f32);
      const Shape shape(e.at("shape").get<std::vector<int64_t>>());
      const uint64_t off = e.at("offset").get<uint64_t>(), nb = e.at("bytes").get<uint64_t>();
      SIMCLR_CHECK(nb == static_cast<uint64_t>(shape.numel()) * dtype_size(dt), wwhere, "tensor '", t.name,
                   "': bytes do not match its shape");
      SIMCLR_CHECK(off <= raw.size() && nb <= raw.size() - off, wwhere, "tensor '", t.name, "' lies outside the file");
      t.tensor = Tensor::empty(shape, dt);
      if (nb > 0) std::memcpy(t.tensor.data_ptr(), raw.data() + off, nb);
      tensors.push_back(std::move(t));
    }
  } catch (const json::exception& e) {
    fail(where, "malformed tensor list in '", manifest_path, "': ", e.what());
  }
  if (kind) *kind = "raw";
  return checkpoint_from_export(tensors, m, wwhere);
}

std::unique_ptr<LoadedEncoder> load_encoder(const std::string& path) {
  auto le = std::make_unique<LoadedEncoder>();
  le->path = path;
  Checkpoint ck = load_checkpoint_or_export(path, &le->kind);
  const std::string where = "'" + path + "': ";
  json manifest = le->kind == "checkpoint" ? export_manifest(ck, path, ExportOptions{}) : ck.meta["export"];
  try {
    const json& mo = manifest.at("model");
    le->model.depth = mo.at("depth").get<int>();
    le->model.width = mo.at("width").get<double>();
    le->model.stem = mo.at("stem").get<std::string>();
    le->model.in_channels = mo.at("in_channels").get<int>();
    le->model.bn_eps = mo.at("bn_eps").get<double>();
    le->model.bn_momentum = mo.value("bn_momentum", 0.1);
    const json& in = manifest.at("input");
    le->data.image_size = in.at("image_size").get<int>();
    le->data.channels = in.at("channels").get<int>();
    le->data.mean = in.at("mean").get<std::vector<float>>();
    le->data.std = in.at("std").get<std::vector<float>>();
    le->data.eval_crop_fraction = in.value("eval_crop_fraction", 1.0);
  } catch (const json::exception& e) {
    fail(where, "incomplete manifest (model/input): ", e.what());
  }
  SIMCLR_CHECK(le->data.image_size > 0 && (le->data.channels == 1 || le->data.channels == 3), where,
               "manifest input has image_size ", le->data.image_size, " and channels ", le->data.channels);
  SIMCLR_CHECK((le->data.mean.size() == 1 || le->data.mean.size() == static_cast<size_t>(le->data.channels)) &&
                   le->data.std.size() == le->data.mean.size(),
               where, "manifest normalisation has ", le->data.mean.size(), " means and ", le->data.std.size(),
               " stds for ", le->data.channels, " channels");
  for (float s : le->data.std) SIMCLR_CHECK(s > 0, where, "manifest normalisation std must be positive");
  if (le->data.mean.size() == 1 && le->data.channels == 3) {
    le->data.mean.assign(3, le->data.mean[0]);
    le->data.std.assign(3, le->data.std[0]);
  }
  le->data.workers = 2;
  le->encoder = std::make_unique<ResNet>(le->model, le->store);
  le->store.materialize();
  try {
    load_model_tensors(ck, le->store, /*skip_head=*/true);
  } catch (const Error& e) {
    fail(where, e.what());
  }
  le->meta = std::move(ck.meta);
  if (le->kind == "checkpoint") le->meta["export"] = manifest;
  return le;
}

}  // namespace simclr
