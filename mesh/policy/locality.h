// File: mesh/policy/locality.h
//
// The locality policy: decides, for one caller, which endpoints of a service
// it should use first, second, and so on. A pure function of (service, caller
// locality), so it is tested and benchmarked without sockets.
//
// Vocabulary (the same as gRPC's xDS and Envoy's):
//   Priority: a failover level. gRPC sends all traffic to the lowest-numbered
//     priority that has a ready endpoint, and moves to the next one when it has
//     none. Priorities are numbered 0, 1, 2, ... without gaps (gRPC NACKs gaps).
//   Locality weight: inside one priority, the share of traffic a locality
//     gets is its weight divided by the sum of weights in that priority.
//     gRPC ignores per-endpoint weights, so any weighting must be expressed
//     here.

#ifndef MESH_POLICY_LOCALITY_H_
#define MESH_POLICY_LOCALITY_H_

#include <cstdint>
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

struct EndpointRef {
  std::string address;
  uint32_t port = 0;
};

struct LocalityGroup {
  config::Locality locality;
  // Sum of the weights of its endpoints (each endpoint weighs 1 unless the
  // config says otherwise), so load per endpoint stays even across the
  // localities of one priority.
  uint32_t weight = 0;
  std::vector<EndpointRef> endpoints;
};

struct Priority {
  Proximity proximity = Proximity::kElsewhere;
  std::vector<LocalityGroup> localities;  // Sorted by locality.
};

// The result of the policy for one (service, caller).
struct Plan {
  std::vector<Priority> priorities;  // priorities[i] is xDS priority i.
  // Endpoints left out and why ("10.0.0.1:80 (UNHEALTHY)").
  std::vector<std::string> excluded;

  // Human-readable explanation, one line per priority and locality.
  std::string Explain() const;
};

// The default proximity order: priority 0 = same cluster, 1 = same zone,
// 2 = same region, 3 = elsewhere; empty levels are skipped and the rest
// renumbered from 0. Endpoints that are UNHEALTHY or DRAINING are excluded.
//
// Example: caller us-east/a/c1; endpoints in us-east/a/c1 (2), us-east/b/c2
// (1), eu-west/x/c9 (1) give P0 = {us-east/a/c1: 2}, P1 = {us-east/b/c2: 1}
// (same region; no same-zone endpoints, so that level is skipped),
// P2 = {eu-west/x/c9: 1}.
Plan ComputePlan(const config::Service& service,
                 const config::Locality& caller);

}  // namespace policy
}  // namespace mesh

#endif  // MESH_POLICY_LOCALITY_H_
