// engine/json_config.h - strict reading of JSON configs.
//
// Every config section is read through a ConfigObject, which knows its key
// path ("train.optimizer") and remembers which keys were read. Errors name the
// full key path:
//   config: 'train.lr' must be a number, got string "fast"
//   config: 'train.epochs' = 0 is out of range [1, 100000]
//   config: unknown key 'train.lrr' (did you mean 'train.lr'?)
// finish() must be called once all keys are read; it rejects unknown keys.
#pragma once
#include <nlohmann/json.hpp>

#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "engine/check.h"

namespace simclr {

using json = nlohmann::json;

class ConfigObject {
 public:
  // j must be an object (or null, read as {}); path is its key path ("" = root).
  ConfigObject(const json& j, std::string path);

  bool has(const std::string& key) const;
  std::string path_of(const std::string& key) const;  // "train.lr"

  // Typed reads with a default; throw naming the key path on a wrong type.
  bool get_bool(const std::string& key, bool def);
  int64_t get_int(const std::string& key, int64_t def, int64_t lo, int64_t hi);
  double get_double(const std::string& key, double def, double lo, double hi);
  std::string get_string(const std::string& key, const std::string& def);
  // A string that must be one of `choices`.
  std::string get_choice(const std::string& key, const std::string& def, std::initializer_list<const char*> choices);
  // A list of numbers (e.g. normalisation mean), each within [lo, hi]; size
  // must be one of `sizes` when non-empty.
  std::vector<double> get_doubles(const std::string& key, const std::vector<double>& def, double lo, double hi,
                                  std::initializer_list<size_t> sizes = {});
  // A required string (error names the key when missing).
  std::string require_string(const std::string& key);

  // Sub-object (missing or null -> empty object at that path).
  ConfigObject child(const std::string& key);

  // Throws on the first key present in the JSON but never read.
  void finish() const;

 private:
  const json& at(const std::string& key);
  json j_;
  std::string path_;
  std::set<std::string> seen_;
};

// Applies a "--set a.b.c=value" override to a JSON document: the value is
// parsed as JSON when it parses (numbers, true/false, lists, quoted strings),
// else taken as a plain string. Intermediate objects are created. Throws on a
// malformed override or when a path component is not an object.
void apply_override(json& root, const std::string& assignment);

// Parses a JSON file, naming the file and the position on a syntax error.
json read_json_file(const std::string& path);

}  // namespace simclr
