// engine/json_config.cpp - see json_config.h.
#include "engine/json_config.h"

#include <algorithm>
#include <set>
#include <vector>

#include "engine/fileio.h"

namespace simclr {

namespace {
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); j++)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
std::string show(const json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}
}  // namespace

ConfigObject::ConfigObject(const json& j, std::string path) : j_(j.is_null() ? json::object() : j), path_(std::move(path)) {
  SIMCLR_CHECK(j_.is_object(), "config: '", path_.empty() ? "<root>" : path_, "' must be an object, got ", show(j_));
}

bool ConfigObject::has(const std::string& key) const {
  if (!j_.contains(key)) return false;
  // null is not "the default": a key written as null is a mistake (a template's
  // placeholder, a generator's missing value), and silently training with the
  // default is the wrong guess
  SIMCLR_CHECK(!j_.at(key).is_null(), "config: '", path_of(key), "' is null: give it a value, or remove the key to "
               "use its default (docs/config.md)");
  return true;
}

std::string ConfigObject::path_of(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

const json& ConfigObject::at(const std::string& key) {
  seen_.insert(key);
  return j_.at(key);
}

bool ConfigObject::get_bool(const std::string& key, bool def) {
  if (!has(key)) return seen_.insert(key), def;
  const json& v = at(key);
  SIMCLR_CHECK(v.is_boolean(), "config: '", path_of(key), "' must be true or false, got ", show(v));
  return v.get<bool>();
}

int64_t ConfigObject::get_int(const std::string& key, int64_t def, int64_t lo, int64_t hi) {
  if (!has(key)) return seen_.insert(key), def;
  const json& v = at(key);
  bool integral = v.is_number_integer() || (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())));
  SIMCLR_CHECK(v.is_number() && integral, "config: '", path_of(key), "' must be an integer, got ", show(v));
  int64_t x = v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
  SIMCLR_CHECK(x >= lo && x <= hi, "config: '", path_of(key), "' = ", x, " is out of range [", lo, ", ", hi, "]");
  return x;
}

double ConfigObject::get_double(const std::string& key, double def, double lo, double hi) {
  if (!has(key)) return seen_.insert(key), def;
  const json& v = at(key);
  SIMCLR_CHECK(v.is_number(), "config: '", path_of(key), "' must be a number, got ", show(v));
  double x = v.get<double>();
  SIMCLR_CHECK(x >= lo && x <= hi, "config: '", path_of(key), "' = ", x, " is out of range [", lo, ", ", hi, "]");
  return x;
}

std::string ConfigObject::get_string(const std::string& key, const std::string& def) {
  if (!has(key)) return seen_.insert(key), def;
  const json& v = at(key);
  SIMCLR_CHECK(v.is_string(), "config: '", path_of(key), "' must be a string, got ", show(v));
  return v.get<std::string>();
}

std::string ConfigObject::require_string(const std::string& key) {
  SIMCLR_CHECK(has(key), "config: '", path_of(key), "' is required");
  return get_string(key, "");
}

std::string ConfigObject::get_choice(const std::string& key, const std::string& def,
                                     std::initializer_list<const char*> choices) {
  std::string s = get_string(key, def);
  std::string list;
  for (const char* c : choices) {
    if (s == c) return s;
    list += list.empty() ? c : std::string(", ") + c;
  }
  fail("config: '", path_of(key), "' = \"", s, "\" is not one of: ", list);
}

std::vector<double> ConfigObject::get_doubles(const std::string& key, const std::vector<double>& def, double lo,
                                              double hi, std::initializer_list<size_t> sizes) {
  if (!has(key)) return seen_.insert(key), def;
  const json& v = at(key);
  SIMCLR_CHECK(v.is_array(), "config: '", path_of(key), "' must be a list of numbers, got ", show(v));
  std::vector<double> out;
  for (const json& e : v) {
    SIMCLR_CHECK(e.is_number(), "config: '", path_of(key), "' must be a list of numbers, got ", show(v));
    double x = e.get<double>();
    SIMCLR_CHECK(x >= lo && x <= hi, "config: '", path_of(key), "' has ", x, " out of range [", lo, ", ", hi, "]");
    out.push_back(x);
  }
  if (sizes.size() > 0) {
    bool ok = std::find(sizes.begin(), sizes.end(), out.size()) != sizes.end();
    std::string list;
    for (size_t s : sizes) list += (list.empty() ? "" : " or ") + std::to_string(s);
    SIMCLR_CHECK(ok, "config: '", path_of(key), "' must have ", list, " values, got ", out.size());
  }
  return out;
}

ConfigObject ConfigObject::child(const std::string& key) {
  seen_.insert(key);
  return ConfigObject(j_.contains(key) ? j_.at(key) : json(), path_of(key));
}

void ConfigObject::finish() const {
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    if (seen_.count(it.key())) continue;
    std::string best;
    size_t bd = 3;
    for (const std::string& k : seen_) {
      size_t d = edit_distance(it.key(), k);
      if (d < bd) bd = d, best = k;
    }
    if (!best.empty()) fail("config: unknown key '", path_of(it.key()), "' (did you mean '", path_of(best), "'?)");
    fail("config: unknown key '", path_of(it.key()), "'");
  }
}

void apply_override(json& root, const std::string& a) {
  size_t eq = a.find('=');
  SIMCLR_CHECK(eq != std::string::npos && eq > 0, "--set '", a, "': expected key.path=value");
  std::string path = a.substr(0, eq), value = a.substr(eq + 1);
  json v;
  try {
    v = json::parse(value);
  } catch (const json::exception&) {
    v = value;  // a bare string
  }
  json* cur = &root;
  size_t start = 0;
  std::string done;
  while (true) {
    size_t dot = path.find('.', start);
    std::string k = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    SIMCLR_CHECK(!k.empty(), "--set '", a, "': empty key in '", path, "'");
    if (dot == std::string::npos) {
      (*cur)[k] = v;
      return;
    }
    done += (done.empty() ? "" : ".") + k;
    if (!cur->contains(k) || (*cur)[k].is_null()) (*cur)[k] = json::object();
    SIMCLR_CHECK((*cur)[k].is_object(), "--set '", a, "': '", done, "' is not an object");
    cur = &(*cur)[k];
    start = dot + 1;
  }
}

json read_json_file(const std::string& path) {
  std::string text = read_file(path);
  SIMCLR_CHECK(text.find_first_not_of(" \t\r\n") != std::string::npos, "'", path,
               "' is empty (expected a JSON object)");
  // Duplicate keys: JSON libraries keep the last silently, so a config
  // holding a key twice is refused (which one the user meant is unknowable).
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  const json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) keys.emplace_back();
    else if (ev == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    else if (ev == json::parse_event_t::key && !keys.empty()) {
      const std::string k = parsed.get<std::string>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb);
  } catch (const json::exception& e) {  // syntax errors, and numbers out of range (1e400)
    fail("'", path, "' is not valid JSON: ", e.what());
  }
  SIMCLR_CHECK(duplicate.empty(), "'", path, "' holds the key '", duplicate,
               "' twice in one object (JSON readers would silently keep the last one): remove one");
  return j;
}

}  // namespace simclr
