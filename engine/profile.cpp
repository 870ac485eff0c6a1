// engine/profile.cpp - see profile.h.
#include "engine/profile.h"

#include <algorithm>
#include <map>

namespace simclr {

namespace {
bool g_on = false;
std::map<std::string, ProfileEntry>& table() {
  static std::map<std::string, ProfileEntry> t;
  return t;
}
}  // namespace

void profile_enable(bool on) { g_on = on; }
bool profile_enabled() { return g_on; }

void profile_add(const char* name, double seconds) {
  ProfileEntry& e = table()[name];
  if (e.name.empty()) e.name = name;
  e.seconds += seconds;
  e.calls += 1;
}

void profile_add_backward(const char* op, double seconds) {
  const std::string name = std::string(op) + ".backward";
  ProfileEntry& e = table()[name];
  if (e.name.empty()) e.name = name;
  e.seconds += seconds;
  e.calls += 1;
}

void profile_reset() { table().clear(); }

std::vector<ProfileEntry> profile_snapshot() {
  std::vector<ProfileEntry> v;
  for (auto& kv : table()) v.push_back(kv.second);
  std::sort(v.begin(), v.end(), [](const ProfileEntry& a, const ProfileEntry& b) { return a.seconds > b.seconds; });
  return v;
}

}  // namespace simclr
