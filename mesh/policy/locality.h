// File: mesh/policy/locality.h
//
// The locality policy: decides, for one caller, which endpoints of a service
// it uses first, second, and so on, and in what proportions. A pure function
// of (service, caller, endpoint health), so it is tested and benchmarked
// without sockets. Its result is expressed in the only terms gRPC's xDS
// client honours: priorities and locality weights.
//
// Vocabulary (the same as gRPC's xDS and Envoy's):
//   Priority: a failover level. gRPC sends all traffic to the lowest-numbered
//     priority that has a ready endpoint, and moves to the next one when it
//     has none. Priorities are numbered 0, 1, 2, ... without gaps (gRPC NACKs
//     gaps).
//   Locality weight: inside one priority, a locality's share of traffic is
//     its weight divided by the sum of weights in that priority. gRPC ignores
//     endpoint weights and Envoy's overprovisioning factor, so every
//     proportion below is turned into locality weights here.
//   Level: an ordering step of a rule (e.g. "same zone"). Levels become
//     priorities; with proportional spillover several levels share priority
//     0 with computed weights.

#ifndef MESH_POLICY_LOCALITY_H_
#define MESH_POLICY_LOCALITY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mesh/config/config.h"

namespace mesh {
namespace policy {

// How close an endpoint is to the caller, closest first.
enum class Proximity {
  kSameCluster = 0,
  kSameZone = 1,
  kSameRegion = 2,
  kElsewhere = 3,
};

// "same cluster", "same zone", ...
const char* ProximityName(Proximity p);

// Proximity of `endpoint` to `caller`. An empty caller field matches nothing,
// so a caller with no locality sees every endpoint as kElsewhere.
Proximity ProximityOf(const config::Locality& caller,
                      const config::Locality& endpoint);

// Who is asking.
struct Caller {
  config::Locality locality;
  std::map<std::string, std::string> labels;
  // The caller's own service in the same config, if any (zone-aware routing
  // compares its spread across zones with the destination's).
  const config::Service* own_service = nullptr;
};

using config::HealthOverrides;

struct EndpointRef {
  std::string address;
  uint32_t port = 0;
};

struct LocalityGroup {
  config::Locality locality;
  uint32_t weight = 0;  // > 0
  std::vector<EndpointRef> endpoints;
  std::string why;  // e.g. "same zone, 84% (spillover level 0)"
};

struct Priority {
  std::vector<LocalityGroup> localities;  // Sorted by locality.
  std::string why;  // The rule that produced it.
};

// The result of the policy for one (service, caller).
struct Plan {
  std::vector<Priority> priorities;  // priorities[i] is xDS priority i.
  std::string rule;                  // Which rule ordered the endpoints.
  std::vector<std::string> notes;    // Computation steps, worked numbers.
  // Endpoints left out and why ("10.0.0.1:80 (UNHEALTHY)").
  std::vector<std::string> excluded;

  // Human-readable explanation: rule, notes, each priority and locality.
  std::string Explain() const;
  // The same as JSON: {"rule", "notes", "priorities": [{"why",
  // "localities": [{"locality", "weight", "share", "why", "endpoints"}]}],
  // "excluded"}; "share" is the locality's percent of its priority.
  std::string ToJson() const;
};

// Computes the plan. Rules (service.locality_policy, at most one set):
//
// Default proximity: levels same cluster, same zone, same region, elsewhere.
//
// failoverPriority (Istio): with N label keys, an endpoint matching the
//   caller on the first k keys (and not the k+1-th) is at level N-k; "region",
//   "zone" and "cluster" name the locality parts, other keys endpoint labels.
//
// failover: for a caller in `from`: same cluster, same zone, same region,
//   then each `to` target in order, then everything else.
//
// distribute: for a caller matching `from`: one priority in which each `to`
//   pattern gets its weight (split among its localities by their endpoint
//   weights); localities matching no pattern get nothing.
//
// zoneAware (Envoy): inside the caller's region, each zone gets traffic in
//   proportion to the destination's capacity there relative to where the
//   callers are, so no zone is overloaded; other regions follow as failover.
//
// Spillover between levels (all rules but distribute and zoneAware), with
// Envoy's math. A level's health = min(100, healthy% x overprovisioning
// factor). Level 0 takes min(100, health_0) % of traffic, level 1 the
// min(rest, health_1), and so on; if the healths sum below 100 the loads are
// scaled up to 100 in proportion to health. Worked example, factor 1.4:
// level 0 has 3 of 5 endpoints healthy: health = 60 x 1.4 = 84, so level 0
// gets 84 % and level 1 the remaining 16 % (if its own health is >= 16).
// The levels that get traffic share priority 0, each locality weighted by
// its level's load times its share of that level's healthy weight; the other
// levels follow as failover priorities. A level whose healthy% is below the
// panic threshold uses all its endpoints, healthy or not (gRPC then skips
// those it cannot connect to). Mode "failover" disables spillover: a level
// takes everything while it has any healthy endpoint.
//
// Endpoints that are UNHEALTHY or DRAINING (per config, or per `health`) are
// left out, except in panic. The output is deterministic whatever the order
// of the config's endpoints.
Plan ComputePlan(const config::Service& service, const Caller& caller,
                 const HealthOverrides& health = {});

}  // namespace policy
}  // namespace mesh

#endif  // MESH_POLICY_LOCALITY_H_
