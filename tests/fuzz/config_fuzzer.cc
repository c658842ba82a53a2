// libFuzzer target: the config loader and validator, then the locality
// policy and route matcher for every service of each config that validates;
// the same bytes as an endpoint set, composed with the config (the merge
// rule), and as a saved last-known-good composition.
// Any crash, leak, UB report or timeout is a bug: bad input must always end
// in a clear error. Run by tests/fuzz/run.sh.

#include <cstddef>
#include <cstdint>
#include <string>

#include "mesh/config/config.h"
#include "mesh/policy/locality.h"
#include "mesh/policy/route_match.h"
#include "mesh/source/compose.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  {
    auto set = mesh::config::ParseEndpointSet(yaml, "fuzz-set.yaml");
    if (!set.ok() && set.status().message().empty()) __builtin_trap();
    if (set.ok()) {
      // What the DNS source writes reads back the same.
      const std::string text = mesh::config::EndpointSetToYaml(*set);
      auto back = mesh::config::ParseEndpointSet(text, "gen");
      if (back.ok() && mesh::config::EndpointSetToYaml(*back) != text) {
        __builtin_trap();
      }
    }
    mesh::source::Composer c;
    c.SetDocument("fuzz.yaml", yaml);
    c.SetEndpointSet("etcd:/mesh/endpoints/x", yaml);
    auto r = c.Compose();
    if (!r.ok() && r.status().message().empty()) __builtin_trap();
    auto restored = mesh::source::Composer::Restore(yaml, "saved.yaml");
    if (restored.ok()) (void)restored->Compose();
  }
  auto cfg = mesh::config::ParseConfig(yaml, "fuzz.yaml");
  if (!cfg.ok()) {
    // A rejection always says something.
    if (cfg.status().message().empty()) __builtin_trap();
    return 0;
  }
  for (const mesh::config::Service& s : (*cfg)->services) {
    mesh::policy::Caller caller;
    caller.locality = {"us-east", "us-east-a", "cluster-1"};
    caller.labels = {{"version", "v2"}};
    caller.own_service = &s;
    const mesh::policy::Plan plan = mesh::policy::ComputePlan(s, caller);
    if (plan.ToJson().empty() || plan.Explain().empty()) __builtin_trap();
    for (const mesh::policy::Priority& p : plan.priorities) {
      if (p.localities.empty()) __builtin_trap();  // Gaps are NACKed.
      for (const auto& g : p.localities) {
        if (g.weight == 0) __builtin_trap();
      }
    }
    (void)plan.Explain();
    (void)mesh::policy::MatchRoute(s, "/pkg.Service/Method",
                                   {{"x-version", "v2"}});
  }
  return 0;
}
