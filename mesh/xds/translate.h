// File: mesh/xds/translate.h
//
// The translation from a mesh config to xDS resources, for one caller. A pure
// function of (config, caller, requested names): the ADS server calls it for
// each connected client with the locality that client sent in its xDS Node,
// so one control plane can serve callers in different localities.
//
// Resource naming (what gRPC asks for, and what we answer):
//   LDS  "app1.mesh.internal" (or "app1.mesh.internal:PORT" when the service
//        declares a port): the client listener of a channel to
//        xds:///app1.mesh.internal.
//   LDS  any other name: a listener that fails calls at once with
//        UNAVAILABLE "could not find VirtualHost for NAME" (hostname not in
//        the config), rather than after gRPC's 15 s does-not-exist timer.
//   LDS  "grpc/server?xds.resource.listening_address=IP:PORT": the listener
//        of a mesh server (grpc::XdsServerBuilder) on that address.
//   RDS  "app1.mesh.internal": routes of that hostname (the service's
//        `routes`, then a default route to the whole service).
//   CDS / EDS  "NAMESPACE/NAME": the cluster of a mesh service and its
//        endpoints, ordered by the locality policy for the caller;
//        "NAMESPACE/NAME/SUBSET" for each subset a route sends to.
//
// Safe defaults are built in here (see docs/config.md, "Built-in defaults"):
// retry on UNAVAILABLE, outlier detection, ROUND_ROBIN (never RING_HASH:
// it crashes libgrpc 1.51.1, grpc/grpc#31766).

#ifndef MESH_XDS_TRANSLATE_H_
#define MESH_XDS_TRANSLATE_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "google/protobuf/any.pb.h"
#include "mesh/config/config.h"
#include "mesh/xds/names.h"
#include "mesh/policy/locality.h"

namespace mesh {
namespace xds {

inline constexpr absl::string_view kListenerType =
    "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr absl::string_view kRouteType =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
inline constexpr absl::string_view kClusterType =
    "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr absl::string_view kEndpointType =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

inline constexpr absl::string_view kServerListenerPrefix =
    "grpc/server?xds.resource.listening_address=";

// Who is asking, as read from the xDS Node of its requests.
struct Caller {
  std::string id;       // node.id
  std::string service;  // node.cluster: the caller's own service name
  config::Locality locality;
  std::map<std::string, std::string> labels;  // node.metadata.labels
  bool mtls = false;  // node.metadata.mesh_mtls == "true"
};

Caller CallerFromNode(const envoy::config::core::v3::Node& node);

// Short type name for logs: "LDS", "RDS", "CDS", "EDS" (or the URL).
std::string TypeName(absl::string_view type_url);

// CDS/EDS name of a service, "NAMESPACE/NAME", or of one of its subsets,
// "NAMESPACE/NAME/SUBSET".
std::string ClusterName(const config::Service& service,
                        absl::string_view subset = "");

// The resources of one type that exist among `names`, keyed by name. Names
// that do not exist are left out (the client then treats them as absent),
// except client listeners (see UnknownHostListener).
// Empty `names` means all resources of the type (an xDS wildcard request;
// server listeners cannot be enumerated and are only returned by name).
// `health` overrides endpoint health (active health checks).
std::map<std::string, google::protobuf::Any> Translate(
    const config::MeshConfig& config, const Caller& caller,
    absl::string_view type_url, const std::vector<std::string>& names,
    const config::HealthOverrides& health = {});

// The builders behind Translate, one per resource, exposed for tests.
envoy::config::listener::v3::Listener ClientListener(
    const config::Service& service, const std::string& name);
envoy::config::listener::v3::Listener UnknownHostListener(
    const std::string& name);
// With `mtls`, the server requires client certificates from the trust
// bundle (authorization happens in the application, per call).
absl::StatusOr<envoy::config::listener::v3::Listener> ServerListener(
    const std::string& name, bool mtls = false);
// The routes of `service` that apply to `caller` (a route's match.source
// decides; without one a route applies to every caller).
envoy::config::route::v3::RouteConfiguration RouteConfig(
    const config::MeshConfig& config, const config::Service& service,
    const config::CallerInfo& caller = {});
// Who `caller` is, for routes' match.source: its service's namespace and
// SPIFFE ID come from the config (the default ones if it is not there).
config::CallerInfo CallerInfoOf(const config::MeshConfig& config,
                                const Caller& caller);
// With a `server_identity` (a SPIFFE ID), connections use mTLS and accept
// only a server certificate whose URI SAN is exactly that ID.
envoy::config::cluster::v3::Cluster ClusterFor(
    const config::Service& service, absl::string_view subset = "",
    absl::string_view server_identity = "");
envoy::config::endpoint::v3::ClusterLoadAssignment LoadAssignmentFor(
    const config::MeshConfig& config, const config::Service& service,
    const Caller& caller, const config::HealthOverrides& health = {},
    absl::string_view subset = "");

// The endpoints of `subset` of `service` (all of them for "").
config::Service SubsetOf(const config::Service& service,
                         absl::string_view subset);

// The locality plan behind LoadAssignmentFor, with its explanation.
policy::Plan PlanFor(const config::MeshConfig& config,
                     const config::Service& service, const Caller& caller,
                     const config::HealthOverrides& health = {});

}  // namespace xds
}  // namespace mesh

#endif  // MESH_XDS_TRANSLATE_H_
