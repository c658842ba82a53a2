// File: mesh/policy/route_match.h
//
// Which route of a service a call would take, with gRPC's matching
// semantics (path exact or prefix, case-sensitive; header exact, prefix,
// RE2 full match, present or absent, optionally inverted; first match wins).
// Used to explain routing (`meshctl explain --method ... --header ...`); the
// data path itself is matched by gRPC.

#ifndef MESH_POLICY_ROUTE_MATCH_H_
#define MESH_POLICY_ROUTE_MATCH_H_

#include <map>
#include <string>

#include "mesh/config/config.h"

namespace mesh {
namespace policy {

struct RouteChoice {
  // The matching route, or nullptr for the built-in default route (every
  // call, to the whole service).
  const config::Route* route = nullptr;
  // Routes that match only a share of calls (`percent`) and were passed
  // over on the way, e.g. "canary (30% of calls)".
  std::vector<std::string> maybe;
};

// Routes whose match.source leaves `caller` out are passed over (the
// control plane does not send them to it).
RouteChoice MatchRoute(const config::Service& service,
                       const std::string& method,
                       const std::map<std::string, std::string>& headers,
                       const config::CallerInfo& caller = {});

}  // namespace policy
}  // namespace mesh

#endif  // MESH_POLICY_ROUTE_MATCH_H_
