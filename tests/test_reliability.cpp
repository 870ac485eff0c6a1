// tests/test_reliability.cpp - issue 16, the library half (the command-line
// reproductions are tests/reliability_check.py):
//  1. resume picks the newest checkpoint that verifies, sets the bad newer
//     ones aside (never deletes them), refuses to start over when only bad
//     ones exist; rotation never deletes the checkpoint just written nor keeps
//     a bad file in place of a good one;
//  2. crafted headers with a valid CRC (negative, wrapped, unaligned,
//     overlapping offsets, absurd shapes, bad state) are clear errors;
//  3. atomic writes never replace a FIFO or device node, write through a
//     symlink, and tool outputs never overwrite an input;
//  4. the run-directory lock: a second holder fails naming the first (pid,
//     host), a lock left by a dead process is taken over;
//  5. appends are checked (a full device is an error);
//  9. temporaries left by a killed write are removed;
//  and the fuzzers' findings in image decoding (tests/fuzz/) stay fixed.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "data/readers.h"
#include "engine/fileio.h"
#include "engine/json_config.h"
#include "helpers.h"
#include "train/checkpoint.h"
#include "train/npy.h"
#include "train/run_config.h"

using namespace simclr;
namespace fs = std::filesystem;

namespace {
// A small checkpoint as the trainer writes one (three tensors, a full meta.state).
Checkpoint small_ck(int64_t step) {
  Checkpoint ck;
  ck.meta["state"] = {{"step", step}, {"epoch", step / 4}, {"batch_in_epoch", step % 4},
                      {"steps_per_epoch", 4}, {"total_steps", 400}};
  ck.meta["config"] = {{"train", {{"batch", 8}}}};
  ck.tensors.push_back({"conv1.weight", "model", kTrainable, simclr::test::rand_tensor({4, 3, 3, 1}, 1, -1, 1, DType::f32)});
  ck.tensors.push_back({"bn1.running_mean", "model", kIsBN | kIsBuffer, simclr::test::rand_tensor({4}, 2, -1, 1, DType::f32)});
  ck.tensors.push_back({"momentum", "optimizer", 0, simclr::test::rand_tensor({36}, 3, -1, 1, DType::f32)});
  return ck;
}
void write_bytes(const std::string& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}
size_t align64(size_t x) { return (x + 63) / 64 * 64; }

// The parts of a checkpoint file, and a file built from (possibly edited) parts with a valid CRC.
struct Parts {
  json header;
  std::string data;
};
Parts split(const std::string& file) {
  uint64_t hlen;
  std::memcpy(&hlen, file.data() + 16, 8);
  Parts p;
  p.header = json::parse(file.substr(24, hlen));
  const size_t start = align64(24 + hlen);
  p.data = file.substr(start, file.size() - 4 - start);
  return p;
}
std::string join(const Parts& p) {
  const std::string hs = p.header.dump();
  std::string out(align64(24 + hs.size()), '\0');
  std::memcpy(&out[0], "SIMCLRCK", 8);
  const uint32_t version = 1, reserved = 0;
  const uint64_t hlen = hs.size();
  std::memcpy(&out[8], &version, 4);
  std::memcpy(&out[12], &reserved, 4);
  std::memcpy(&out[16], &hlen, 8);
  std::memcpy(&out[24], hs.data(), hs.size());
  out += p.data;
  const uint32_t c = crc32(out.data(), out.size());
  out.append(reinterpret_cast<const char*>(&c), 4);
  return out;
}
std::string load_error(const std::string& bytes) {
  try {
    checkpoint_from_bytes(bytes, "crafted.ckpt");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// ---------------------------------------------------------------- item 2
TEST_CASE("reliability: a crafted checkpoint header with a valid CRC is a clear error, never an out-of-bounds read",
          "[reliability][checkpoint]") {
  const std::string good = checkpoint_to_bytes(small_ck(8));
  REQUIRE(load_error(good).empty());
  REQUIRE(load_error(join(split(good))).empty());  // the crafting helpers rebuild a valid file

  struct Case {
    const char* what;
    std::function<void(Parts&)> edit;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"negative offset", [](Parts& p) { p.header["tensors"][1]["offset"] = -64; }, "non-negative integer"},
      // 2^64 - 64: data_start + offset wraps around to just before the data section
      {"wrapped offset", [](Parts& p) { p.header["tensors"][1]["offset"] = UINT64_MAX - 63; }, "lies outside the file"},
      {"offset past the end", [](Parts& p) { p.header["tensors"][2]["offset"] = 1 << 20; }, "lies outside the file"},
      {"bytes past the end", [](Parts& p) {
         p.header["tensors"][2]["shape"] = {1 << 20};
         p.header["tensors"][2]["bytes"] = 4 << 20;
       }, "larger than the file's data section"},
      {"huge shape whose byte count wraps", [](Parts& p) {
         p.header["tensors"][0]["shape"] = {int64_t{1} << 62, 4};
         p.header["tensors"][0]["bytes"] = 0;
       }, "larger than the file's data section"},
      {"negative shape", [](Parts& p) { p.header["tensors"][0]["shape"] = {-4, 3, 3, 1}; }, "non-negative integer"},
      {"unaligned offset", [](Parts& p) { p.header["tensors"][1]["offset"] = p.header["tensors"][1]["offset"].get<int64_t>() + 4; },
       "not a multiple of 64"},
      {"overlapping tensors", [](Parts& p) { p.header["tensors"][1]["offset"] = 0; }, "overlap"},
      {"fractional offset", [](Parts& p) { p.header["tensors"][1]["offset"] = 64.5; }, "non-negative integer"},
      {"bytes not matching the shape", [](Parts& p) { p.header["tensors"][1]["bytes"] = 8; }, "do not match its shape"},
      {"unknown dtype", [](Parts& p) { p.header["tensors"][1]["dtype"] = "f128"; }, "unknown dtype"},
      {"unknown group", [](Parts& p) { p.header["tensors"][1]["group"] = "extra"; }, "unknown group"},
      {"duplicate name", [](Parts& p) { p.header["tensors"][1]["name"] = "conv1.weight"; }, "appears twice"},
      {"six dimensions", [](Parts& p) { p.header["tensors"][1]["shape"] = {1, 1, 1, 1, 1, 4}; }, "at most 5"},
      {"tensor list not a list", [](Parts& p) { p.header["tensors"] = json::object(); }, "no tensor list"},
      {"entry not an object", [](Parts& p) { p.header["tensors"][0] = 7; }, "not an object"},
      {"name missing", [](Parts& p) { p.header["tensors"][0].erase("name"); }, "has no name"},
      {"meta not an object", [](Parts& p) { p.header["meta"] = "x"; }, "\"meta\" is not an object"},
      {"negative step", [](Parts& p) { p.header["meta"]["state"]["step"] = -5; }, "meta.state.step must be an integer >= 0"},
      {"step beyond the total", [](Parts& p) {
         p.header["meta"]["state"]["step"] = 4000;
         p.header["meta"]["state"]["epoch"] = 1000;
         p.header["meta"]["state"]["batch_in_epoch"] = 0;
       }, "beyond meta.state.total_steps"},
      {"zero steps per epoch", [](Parts& p) { p.header["meta"]["state"]["steps_per_epoch"] = 0; }, "steps_per_epoch must be"},
      {"epoch not matching the step", [](Parts& p) { p.header["meta"]["state"]["epoch"] = 7; }, "does not match step"},
      {"state not an object", [](Parts& p) { p.header["meta"]["state"] = 3; }, "meta.state is not an object"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Parts p = split(good);
    c.edit(p);
    const std::string err = load_error(join(p));
    CHECK_THAT(err, Catch::Contains("checkpoint 'crafted.ckpt': ") && Catch::Contains(c.expect));
  }
  // a header length that points past the end (CRC valid), and one that wraps
  for (uint64_t hlen : {uint64_t{1} << 40, UINT64_MAX - 10}) {
    std::string s = good;
    std::memcpy(&s[16], &hlen, 8);
    const uint32_t c = crc32(s.data(), s.size() - 4);
    std::memcpy(&s[s.size() - 4], &c, 4);
    CHECK_THAT(load_error(s), Catch::Contains("truncated (header of"));
  }
}

TEST_CASE("reliability: meta.state for a resume is checked and named (missing state, missing keys)",
          "[reliability][checkpoint]") {
  Checkpoint ck = small_ck(6);
  CheckpointRunState st = checkpoint_run_state(ck, "a.ckpt");
  CHECK(st.step == 6);
  CHECK(st.steps_per_epoch == 4);
  CHECK(st.total_steps == 400);
  ck.meta["state"]["epoch_loss_sum"] = 9.5;
  ck.meta["state"]["epoch_loss_steps"] = 2;
  st = checkpoint_run_state(ck, "a.ckpt");
  CHECK(st.epoch_loss_sum == 9.5);
  CHECK(st.epoch_loss_steps == 2);
  ck.meta["state"]["epoch_loss_steps"] = 3;  // step 6 at 4 per epoch: at most 2 steps of this epoch
  CHECK_THROWS_WITH(checkpoint_run_state(ck, "a.ckpt"), Catch::Contains("'a.ckpt'") && Catch::Contains("epoch_loss_steps"));
  ck.meta.erase("state");
  CHECK_THROWS_WITH(checkpoint_run_state(ck, "a.ckpt"), Catch::Contains("checkpoint 'a.ckpt': has no meta.state"));
  // and through a file: a checkpoint without state loads (an encoder import
  // may be used for evaluation) but cannot be resumed from
  const std::string dir = simclr::test::scratch_dir("rel_nostate");
  save_checkpoint(dir + "/x.ckpt", ck);
  Checkpoint back = load_checkpoint(dir + "/x.ckpt");
  CHECK_THROWS_WITH(checkpoint_run_state(back, dir + "/x.ckpt"), Catch::Contains("x.ckpt") && Catch::Contains("meta.state"));
  ck.meta["state"] = {{"step", 3}};
  CHECK_THROWS_WITH(checkpoint_run_state(ck, "a.ckpt"), Catch::Contains("meta.state has no steps_per_epoch"));
}

// ---------------------------------------------------------------- item 1
TEST_CASE("reliability: --resume takes the newest good checkpoint, sets bad newer ones aside, never starts over silently",
          "[reliability][checkpoint]") {
  const std::string dir = simclr::test::scratch_dir("rel_resume");
  for (int64_t s : {4, 8, 12}) save_checkpoint(checkpoint_path(dir, s), small_ck(s));
  // the issue's reproduction: `truncate -s 100` the newer checkpoints
  fs::resize_file(checkpoint_path(dir, 8), 100);
  fs::resize_file(checkpoint_path(dir, 12), 100);
  Checkpoint got;
  ResumeChoice rc = choose_resume_checkpoint(dir, &got);
  CHECK(rc.path == checkpoint_path(dir, 4));
  CHECK(got.meta["state"]["step"] == 4);
  REQUIRE(rc.skipped.size() == 2);
  CHECK(rc.skipped[0].path == checkpoint_path(dir, 12));
  CHECK_THAT(rc.skipped[0].reason, Catch::Contains("checkpoint-000000012.ckpt") && Catch::Contains("truncated"));
  CHECK(rc.skipped[0].moved_to == checkpoint_path(dir, 12) + ".bad");
  CHECK_THAT(describe_set_aside(rc.skipped[0]), Catch::Contains("renamed to checkpoint-000000012.ckpt.bad"));
  CHECK(fs::file_size(checkpoint_path(dir, 12) + ".bad") == 100);  // kept, not deleted
  CHECK(fs::file_size(checkpoint_path(dir, 8) + ".bad") == 100);
  CHECK(list_checkpoints(dir) == std::vector<std::string>{checkpoint_path(dir, 4)});

  // only bad ones: an error naming each, and nothing changed
  const std::string all_bad = simclr::test::scratch_dir("rel_resume_allbad");
  for (int64_t s : {4, 8, 12}) {
    save_checkpoint(checkpoint_path(all_bad, s), small_ck(s));
    fs::resize_file(checkpoint_path(all_bad, s), 100);
  }
  try {
    choose_resume_checkpoint(all_bad, nullptr);
    FAIL("no error");
  } catch (const Error& e) {
    const std::string m = e.what();
    CHECK_THAT(m, Catch::Contains("none of the 3 checkpoint(s)") && Catch::Contains("checkpoint-000000004.ckpt") &&
                      Catch::Contains("checkpoint-000000012.ckpt") && Catch::Contains("Nothing was changed"));
  }
  CHECK(list_checkpoints(all_bad).size() == 3);
  // an empty directory: nothing to resume, no error
  CHECK(choose_resume_checkpoint(simclr::test::scratch_dir("rel_resume_empty"), nullptr).path.empty());
}

TEST_CASE("reliability: rotation keeps the checkpoint just written and good ones, never bad files over good ones",
          "[reliability][checkpoint]") {
  // bad checkpoints with higher step numbers (a copied or foreign run): the
  // old rotation kept them and deleted each new checkpoint right after writing it
  const std::string dir = simclr::test::scratch_dir("rel_rotate");
  for (int64_t s : {4, 8}) save_checkpoint(checkpoint_path(dir, s), small_ck(s));
  write_bytes(checkpoint_path(dir, 96), "junk");
  write_bytes(checkpoint_path(dir, 100), "junk");
  save_checkpoint(checkpoint_path(dir, 12), small_ck(12));
  std::vector<std::string> notes = prune_checkpoints(dir, 2, checkpoint_path(dir, 12));
  std::vector<std::string> left = list_checkpoints(dir);
  CHECK(std::find(left.begin(), left.end(), checkpoint_path(dir, 12)) != left.end());
  CHECK(std::find(left.begin(), left.end(), checkpoint_path(dir, 8)) != left.end());
  CHECK(std::find(left.begin(), left.end(), checkpoint_path(dir, 4)) == left.end());
  CHECK(fs::exists(checkpoint_path(dir, 96)));  // not ours to delete: left, with a note
  REQUIRE(notes.size() == 2);
  CHECK_THAT(notes[0], Catch::Contains("checkpoint-000000100.ckpt") && Catch::Contains("left in place"));

  // a bad checkpoint inside the kept range: set aside, an older good one kept instead
  const std::string d2 = simclr::test::scratch_dir("rel_rotate2");
  for (int64_t s : {4, 8, 12, 16}) save_checkpoint(checkpoint_path(d2, s), small_ck(s));
  std::string b12 = read_file(checkpoint_path(d2, 12));
  b12[b12.size() / 2] ^= 1;
  write_bytes(checkpoint_path(d2, 12), b12);
  notes = prune_checkpoints(d2, 2, checkpoint_path(d2, 16));
  CHECK(list_checkpoints(d2) == std::vector<std::string>{checkpoint_path(d2, 8), checkpoint_path(d2, 16)});
  CHECK(fs::exists(checkpoint_path(d2, 12) + ".bad"));
  REQUIRE(notes.size() == 1);
  CHECK_THAT(notes[0], Catch::Contains("checksum mismatch") && Catch::Contains("older good one is kept"));

  // the checkpoint just written does not verify: an error, never a silent success
  write_bytes(checkpoint_path(d2, 20), "junk");
  CHECK_THROWS_WITH(prune_checkpoints(d2, 2, checkpoint_path(d2, 20)),
                    Catch::Contains("just written does not verify") && Catch::Contains("checkpoint-000000020.ckpt"));
  CHECK(list_checkpoints(d2).size() == 3);  // nothing deleted
}

TEST_CASE("reliability: verify_checkpoint_file streams the same checks as the loader", "[reliability][checkpoint]") {
  const std::string dir = simclr::test::scratch_dir("rel_verify");
  const std::string p = dir + "/a.ckpt";
  save_checkpoint(p, small_ck(8));
  CHECK(verify_checkpoint_file(p).empty());
  const std::string good = read_file(p);
  for (size_t cut : {size_t{0}, size_t{5}, size_t{27}, size_t{100}, good.size() - 1}) {
    INFO("cut at " << cut);
    write_bytes(p, good.substr(0, cut));
    CHECK_THAT(verify_checkpoint_file(p), Catch::Contains("a.ckpt"));
  }
  Parts parts = split(good);
  parts.header["tensors"][1]["offset"] = 0;
  write_bytes(p, join(parts));
  CHECK_THAT(verify_checkpoint_file(p), Catch::Contains("overlap"));
  CHECK_THAT(verify_checkpoint_file(dir + "/none.ckpt"), Catch::Contains("no such file"));
}

// ---------------------------------------------------------------- item 3
TEST_CASE("reliability: atomic writes never replace a FIFO or device node, and write through a symlink",
          "[reliability][fileio]") {
  const std::string dir = simclr::test::scratch_dir("rel_outputs");
  const std::string fifo = dir + "/pipe";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  CHECK_THROWS_WITH(write_file_atomic(fifo, "x"), Catch::Contains("cannot write '" + fifo + "': it is a FIFO"));
  struct stat st {};
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));  // still the FIFO
  // a device node: /dev/null is one on every Linux; nothing is written or renamed
  CHECK_THROWS_WITH(output_target("/dev/null"), Catch::Contains("character device"));
  CHECK_THROWS_WITH(write_file_atomic(dir, "x"), Catch::Contains("directory"));
  // a symlink is written through: the link stays, its target gets the bytes
  write_bytes(dir + "/target.bin", "old");
  fs::create_symlink("target.bin", dir + "/link.bin");
  write_file_atomic(dir + "/link.bin", "new");
  CHECK(fs::is_symlink(dir + "/link.bin"));
  CHECK(read_file(dir + "/target.bin") == "new");
  // a symlink to a FIFO is refused too
  fs::create_symlink("pipe", dir + "/link.pipe");
  CHECK_THROWS_WITH(write_file_atomic(dir + "/link.pipe", "x"), Catch::Contains("FIFO"));
  // no temporaries left by any refusal
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("reliability: a tool output never overwrites an input, an unrelated file only when allowed",
          "[reliability][fileio]") {
  const std::string dir = simclr::test::scratch_dir("rel_inputs");
  write_bytes(dir + "/z.npy", "input");
  fs::create_symlink("z.npy", dir + "/z-link.npy");
  CHECK_THROWS_WITH(check_output_path("--grad-out", dir + "/z.npy", {dir + "/z.npy"}, true),
                    Catch::Contains("--grad-out") && Catch::Contains("is the input"));
  CHECK_THROWS_WITH(check_output_path("--grad-out", dir + "/z-link.npy", {"", dir + "/z.npy"}, true),
                    Catch::Contains("is the input"));
  CHECK_THROWS_WITH(check_output_path("--grad-out", dir + "/./z.npy", {dir + "/z-link.npy"}, true),
                    Catch::Contains("is the input"));
  CHECK_THROWS_WITH(check_output_path("--out", dir + "/z.npy", {}, false), Catch::Contains("--force"));
  check_output_path("--out", dir + "/z.npy", {dir + "/missing"}, true);  // replacing an unrelated file is allowed
  check_output_path("--out", dir + "/new.npy", {dir + "/z.npy"}, false);  // a new file always
  CHECK(read_file(dir + "/z.npy") == "input");
}

// ---------------------------------------------------------------- item 4
TEST_CASE("reliability: the run-directory lock names its holder and is taken over from a dead process",
          "[reliability][lock]") {
  const std::string dir = simclr::test::scratch_dir("rel_lock");
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  {
    DirLock a(dir, "the run directory");
    CHECK(a.note().empty());
    // a second holder (another open file description, as another process has) fails at once
    CHECK_THROWS_WITH(DirLock(dir, "the run directory"),
                      Catch::Contains("the run directory '" + dir + "' is in use by process " +
                                      std::to_string(getpid()) + " on " + host));
  }
  // released at scope end: free again
  { DirLock again(dir, "the run directory"); }

  // another process holds it: its pid is named; once it dies the lock is taken over
  int ready[2], go[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(go) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int rc = 0;
    try {
      DirLock held(dir, "the run directory");
      char c = 1;
      if (::write(ready[1], &c, 1) != 1) rc = 2;
      if (::read(go[0], &c, 1) != 1) rc = 3;
      ::_exit(rc);  // dies holding it, as after a SIGKILL: no destructor clears the record
    } catch (...) {
      ::_exit(4);
    }
  }
  char c;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  CHECK_THROWS_WITH(DirLock(dir, "the run directory"),
                    Catch::Contains("in use by process " + std::to_string(child) + " on " + host) &&
                        Catch::Contains("started"));
  REQUIRE(::write(go[1], &c, 1) == 1);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  DirLock taken(dir, "the run directory");
  CHECK_THAT(taken.note(), Catch::Contains("took over the lock of process " + std::to_string(child)));
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
}

// ---------------------------------------------------------------- items 5 and 9
TEST_CASE("reliability: appends are checked (a full device is an error naming the file)", "[reliability][fileio]") {
  if (!fs::exists("/dev/full")) SUCCEED("no /dev/full");
  else
    CHECK_THROWS_WITH(append_file("/dev/full", "{\"step\":1}\n"),
                      Catch::Contains("cannot append to '/dev/full'") && Catch::Contains("No space left"));
  const std::string dir = simclr::test::scratch_dir("rel_append");
  append_file(dir + "/m.jsonl", "a\n");
  append_file(dir + "/m.jsonl", "b\n");
  CHECK(read_file(dir + "/m.jsonl") == "a\nb\n");
}

TEST_CASE("reliability: temporaries an interrupted write left are removed, nothing else", "[reliability][checkpoint]") {
  const std::string dir = simclr::test::scratch_dir("rel_tmp");
  save_checkpoint(checkpoint_path(dir, 4), small_ck(4));
  write_bytes(checkpoint_path(dir, 8) + ".tmp.4242.123456", "half a checkpoint");
  write_bytes(checkpoint_path(dir, 8) + ".tmp.4242.partial", "half a checkpoint");
  write_bytes(dir + "/metrics.jsonl.tmp.77.9", "x");
  write_bytes(dir + "/notes.tmp.txt", "keep: no pid");
  write_bytes(dir + "/notes.tmp.1.txt", "keep: not a file a run writes");
  write_bytes(dir + "/config.json.tmp." + std::to_string(getpid()) + ".5", "ours: a write in progress");
  std::vector<std::string> removed = remove_stale_temporaries(dir);
  CHECK(removed == std::vector<std::string>{"checkpoint-000000008.ckpt.tmp.4242.123456",
                                            "checkpoint-000000008.ckpt.tmp.4242.partial", "metrics.jsonl.tmp.77.9"});
  CHECK(fs::exists(dir + "/notes.tmp.txt"));
  CHECK(fs::exists(dir + "/notes.tmp.1.txt"));
  CHECK(fs::exists(dir + "/config.json.tmp." + std::to_string(getpid()) + ".5"));
  CHECK(list_checkpoints(dir).size() == 1);
}

// ---------------------------------------------------------------- fuzzing findings
TEST_CASE("reliability: image decoding refuses the inputs the fuzzer found in stb_image 2.27", "[reliability][data]") {
  // tests/fuzz/corpus/image/regress-*: the first byte is fuzz_image's channel selector
  const fs::path dir = fs::path(SIMCLR_SOURCE_DIR) / "tests/fuzz/corpus/image";
  int seen = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("regress-", 0) != 0) continue;
    INFO(n);
    seen++;
    const std::string bytes = read_file(e.path().string());
    Image img;
    std::string why;
    CHECK_FALSE(decode_image(reinterpret_cast<const uint8_t*>(bytes.data()) + 1, bytes.size() - 1, 3, &img, &why));
    if (n.find("oom-png") != std::string::npos)
      CHECK_THAT(why, Catch::Contains("PNG: chunk") && Catch::Contains("declares"));  // stb allocated 2 GB first
    else if (n.find("timeout") != std::string::npos)
      CHECK_THAT(why, Catch::Contains("pixels") && Catch::Contains("downscale"));  // a 60-byte BMP of 11 x 16M pixels
    else
      CHECK_THAT(why, Catch::Contains("more than 256 codes"));  // the Huffman-table overflow (stb issues 1289/1291)
  }
  CHECK(seen == 5);
  // a truncated JPEG names the format it claims (stb reported the last format it tried: "bad png sig")
  const std::string jpg = read_file((dir / "rgb.jpg").string()).substr(1);
  Image img;
  std::string why;
  CHECK_FALSE(decode_image(reinterpret_cast<const uint8_t*>(jpg.data()), 200, 3, &img, &why));
  CHECK_THAT(why, Catch::StartsWith("corrupt or truncated JPEG"));
  CHECK_THAT(why, !Catch::Contains("png", Catch::CaseSensitive::No));  // not another format's complaint
  REQUIRE(decode_image(reinterpret_cast<const uint8_t*>(jpg.data()), jpg.size(), 3, &img, &why));
  CHECK(img.height == 8);
}

TEST_CASE("reliability: a config with a key twice or a number out of range is an error naming the file",
          "[reliability][config]") {
  const std::string dir = simclr::test::scratch_dir("rel_config");
  write_bytes(dir + "/dup.json", R"({"train": {"epochs": 3, "batch": 8, "epochs": 5}})");
  CHECK_THROWS_WITH(read_json_file(dir + "/dup.json"),
                    Catch::Contains("dup.json") && Catch::Contains("holds the key 'epochs' twice"));
  write_bytes(dir + "/same-name-elsewhere.json", R"({"a": {"epochs": 1}, "b": {"epochs": 2}})");
  CHECK(read_json_file(dir + "/same-name-elsewhere.json")["b"]["epochs"] == 2);  // one per object is fine
  // found by tests/fuzz/fuzz_config.cpp: the JSON library's out_of_range escaped as an uncaught exception
  write_bytes(dir + "/big.json", R"({"optimizer": {"lr": 1e400}})");
  CHECK_THROWS_WITH(read_json_file(dir + "/big.json"), Catch::Contains("big.json") && Catch::Contains("not valid JSON") &&
                                                         Catch::Contains("number overflow"));
}

TEST_CASE("reliability: a .npy header claiming a huge or empty shape is checked before anything is allocated",
          "[reliability][npy]") {
  const std::string dir = simclr::test::scratch_dir("rel_npy");
  auto npy = [&](const std::string& name, const std::string& shape, size_t payload) {
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    h += std::string((64 - (10 + h.size() + 1) % 64) % 64, ' ') + "\n";
    std::string s = "\x93NUMPY";
    s += '\x01';
    s += '\x00';
    s += static_cast<char>(h.size() & 0xff);
    s += static_cast<char>(h.size() >> 8);
    s += h + std::string(payload, '\0');
    write_bytes(dir + "/" + name, s);
    return dir + "/" + name;
  };
  // 2^40 x 2^40 floats: the element count overflows int64; it used to be allocated first
  CHECK_THROWS_WITH(read_npy(npy("huge.npy", "(1099511627776, 1099511627776)", 16)),
                    Catch::Contains("huge.npy") && Catch::Contains("truncated data"));
  CHECK_THROWS_WITH(read_npy(npy("short.npy", "(4, 4)", 60)), Catch::Contains("truncated data (60 bytes"));
  // an empty array (found by tests/fuzz/fuzz_npy.cpp: memcpy from a null pointer)
  Tensor e = read_npy(npy("empty.npy", "(0, 3)", 0));
  CHECK(e.numel() == 0);
  CHECK(read_npy(npy("ok.npy", "(2, 2)", 16)).numel() == 4);
}

TEST_CASE("reliability: a resume's config check ignores last-bit float noise and shows numbers readably",
          "[reliability][config]") {
  // a derived value (a 5% warm-up of 6 epochs) computed two ways: the same number
  const json a = {{"schedule", {{"warmup_epochs", 0.3}}}}, b = {{"schedule", {{"warmup_epochs", 0.1 + 0.2}}}};
  CHECK(config_mismatch(a, b).empty());
  const json c = {{"schedule", {{"warmup_epochs", 1.0}}}};
  const std::string m = config_mismatch(c, b);
  CHECK(m == "schedule.warmup_epochs (1.0 in the checkpoint, 0.3 now)");  // was 0.30000000000000004
  CHECK(config_mismatch(json{{"train", {{"batch", 256}}}}, json{{"train", {{"batch", 128}}}}) ==
        "train.batch (256 in the checkpoint, 128 now)");
}

TEST_CASE("reliability: a null config value is an error naming the key, not the default", "[reliability][config]") {
  json j = quickstart_config();
  j["train"]["epochs"] = nullptr;
  CHECK_THROWS_WITH(parse_run_config(j), Catch::Contains("'train.epochs' is null") && Catch::Contains("remove the key"));
  j["train"].erase("epochs");
  CHECK(parse_run_config(j).train.epochs == 100);  // absent: the default
}
