#include "mesh/policy/locality.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace mesh {
namespace policy {

const char* ProximityName(Proximity p) {
  switch (p) {
    case Proximity::kSameCluster:
      return "same cluster";
    case Proximity::kSameZone:
      return "same zone";
    case Proximity::kSameRegion:
      return "same region";
    case Proximity::kElsewhere:
      return "elsewhere";
  }
  return "?";
}

Proximity ProximityOf(const config::Locality& caller,
                      const config::Locality& ep) {
  if (caller.region.empty() || caller.region != ep.region) {
    return Proximity::kElsewhere;
  }
  if (caller.zone.empty() || caller.zone != ep.zone) {
    return Proximity::kSameRegion;
  }
  if (caller.cluster.empty() || caller.cluster != ep.cluster) {
    return Proximity::kSameZone;
  }
  return Proximity::kSameCluster;
}

Plan ComputePlan(const config::Service& service,
                 const config::Locality& caller) {
  Plan plan;
  // level -> locality -> group; std::map keeps the output deterministic.
  std::map<Proximity, std::map<config::Locality, LocalityGroup>> levels;
  for (const config::Endpoint& ep : service.endpoints) {
    if (ep.health != config::Health::kHealthy) {
      plan.excluded.push_back(absl::StrCat(
          ep.address, ":", ep.port, " (",
          ep.health == config::Health::kUnhealthy ? "UNHEALTHY" : "DRAINING",
          ")"));
      continue;
    }
    LocalityGroup& g = levels[ProximityOf(caller, ep.locality)][ep.locality];
    g.locality = ep.locality;
    g.weight += ep.weight;
    g.endpoints.push_back({ep.address, ep.port});
  }
  for (auto& [proximity, groups] : levels) {
    Priority p;
    p.proximity = proximity;
    for (auto& [loc, group] : groups) p.localities.push_back(std::move(group));
    plan.priorities.push_back(std::move(p));
  }
  return plan;
}

std::string Plan::Explain() const {
  std::string out;
  for (size_t i = 0; i < priorities.size(); ++i) {
    const Priority& p = priorities[i];
    uint64_t total = 0;
    for (const LocalityGroup& g : p.localities) total += g.weight;
    absl::StrAppend(&out, "priority ", i, " (", ProximityName(p.proximity),
                    "):\n");
    for (const LocalityGroup& g : p.localities) {
      absl::StrAppend(&out, "  ", g.locality.ToString(), " weight ", g.weight,
                      " (", total ? g.weight * 100 / total : 0, "% of P", i,
                      "), ", g.endpoints.size(), " endpoint(s):");
      for (const EndpointRef& e : g.endpoints) {
        absl::StrAppend(&out, " ", e.address, ":", e.port);
      }
      absl::StrAppend(&out, "\n");
    }
  }
  if (priorities.empty()) absl::StrAppend(&out, "no healthy endpoints\n");
  for (const std::string& e : excluded) {
    absl::StrAppend(&out, "excluded: ", e, "\n");
  }
  return out;
}

}  // namespace policy
}  // namespace mesh
