// tests/test_json_config.cpp - strict config reading and --set overrides.
#include "engine/json_config.h"
#include "helpers.h"

using namespace simclr;

TEST_CASE("config reader: types, ranges, unknown keys name the key path", "[config]") {
  json j = json::parse(R"({"train": {"lr": 0.3, "epochs": 10, "name": "x", "lrr": 1, "flag": true,
                                      "mean": [0.5, 0.5, 0.5], "bad": "fast"}})");
  ConfigObject root(j, "");
  ConfigObject t = root.child("train");
  CHECK(t.get_double("lr", 1.0, 0, 10) == 0.3);
  CHECK(t.get_int("epochs", 1, 1, 100) == 10);
  CHECK(t.get_int("missing", 7, 1, 100) == 7);
  CHECK(t.get_string("name", "") == "x");
  CHECK(t.get_bool("flag", false));
  CHECK(t.get_doubles("mean", {}, 0, 1, {1, 3}).size() == 3);
  CHECK_THROWS_WITH(t.get_double("bad", 1, 0, 1), "config: 'train.bad' must be a number, got \"fast\"");
  CHECK_THROWS_WITH(t.get_int("lr", 1, 1, 100), Catch::Contains("'train.lr' must be an integer"));
  CHECK_THROWS_WITH(t.get_int("epochs", 1, 20, 100), "config: 'train.epochs' = 10 is out of range [20, 100]");
  CHECK_THROWS_WITH(t.get_choice("name", "a", {"a", "b"}), Catch::Contains("is not one of: a, b"));
  CHECK_THROWS_WITH(t.finish(), "config: unknown key 'train.lrr' (did you mean 'train.lr'?)");
  CHECK_THROWS_WITH(ConfigObject(json::parse("[1]"), "data"), Catch::Contains("'data' must be an object"));
}

TEST_CASE("config overrides (--set key.path=value)", "[config]") {
  json j = json::parse(R"({"train": {"lr": 0.3}})");
  apply_override(j, "train.lr=1.5");
  apply_override(j, "train.name=run one");
  apply_override(j, "data.aug.blur=false");
  CHECK(j["train"]["lr"] == 1.5);
  CHECK(j["train"]["name"] == "run one");
  CHECK(j["data"]["aug"]["blur"] == false);
  CHECK_THROWS_WITH(apply_override(j, "nodot"), Catch::Contains("expected key.path=value"));
  CHECK_THROWS_WITH(apply_override(j, "train.lr.x=1"), Catch::Contains("'train.lr' is not an object"));
}
