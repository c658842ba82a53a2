// File: mesh/admin.h (internal to //mesh)
//
// What the admin endpoint serves (MeshOptions::admin_address), rendered
// from a copy of the mesh's state: JSON for scripts and the status page,
// a text view for `meshctl status`, Prometheus text for scrapers, and the
// status page itself. Nothing here ever sees key material: the state holds
// the identity's SPIFFE ID, serial and expiry only.

#ifndef MESH_ADMIN_H_
#define MESH_ADMIN_H_

#include <cstdint>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "mesh/mesh.h"
#include "mesh/telemetry/call_metrics.h"

namespace mesh {
namespace internal {

struct DestinationView {
  std::string hostname;
  std::string xds_version;
  std::string plan_json;  // policy::Plan::ToJson(), "" before the first.
  std::shared_ptr<const telemetry::EndpointPlan> endpoints;  // Or null.
  std::vector<std::string> excluded;                         // With reason.
  telemetry::CallMetrics::Totals calls;   // Since the start.
  telemetry::CallMetrics::Totals recent;  // Over the last ~10 s.
  double recent_seconds = 0;
};

struct Event {
  absl::Time time;
  std::string text;
};

struct AdminView {
  MeshStatus status;
  std::string config_path;
  // The running config (YAML); kept only with an admin endpoint.
  std::shared_ptr<const std::string> config_text;
  absl::Time config_time = absl::InfinitePast();  // When it was applied.
  std::vector<Event> events;  // Oldest first.
  std::vector<DestinationView> destinations;
};

std::string StatusJson(const AdminView& v);
std::string StatusText(const AdminView& v);
std::string ClustersJson(const AdminView& v);
// {"version": V, "config": the YAML as JSON} (or an "error").
std::string ConfigJson(const AdminView& v);
// Status gauges and counters (call metrics are rendered by CallMetrics).
std::string StatusPrometheus(const AdminView& v);
const char* StatusPageHtml();

}  // namespace internal
}  // namespace mesh

#endif  // MESH_ADMIN_H_
