// tests/fuzz/fuzz_config.cpp - the run-config reader: JSON file -> schema
// (train/run_config.cpp: every key, type and range), as `simclr train` reads it.
#include "fuzz_common.h"
#include "train/run_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::put("run.json", data, size);
  FUZZ_BODY({
    simclr::RunConfig c = simclr::load_run_config(path, {});
    (void)simclr::run_config_to_json(c);
  });
}
