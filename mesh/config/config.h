// File: mesh/config/config.h
//
// The mesh configuration model (schema "mesh/v1") and its loader. A config is
// parsed from YAML, validated completely (every problem is reported, each with
// file:line:column and the field path), and only then turned into an immutable
// value. Nothing here touches the network or gRPC; see docs/config.md for the
// schema users write.

#ifndef MESH_CONFIG_CONFIG_H_
#define MESH_CONFIG_CONFIG_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mesh {
namespace config {

// Where a workload runs. `cluster` is the finest level; in xDS terms it is the
// locality's sub_zone. An empty field means "unknown" and only matches at the
// coarser levels.
struct Locality {
  std::string region;
  std::string zone;
  std::string cluster;

  // "region/zone/cluster", with empty parts left empty.
  std::string ToString() const;
  bool operator==(const Locality& o) const {
    return region == o.region && zone == o.zone && cluster == o.cluster;
  }
  bool operator<(const Locality& o) const;
};

enum class Health {
  kHealthy,    // Serves traffic.
  kUnhealthy,  // Known bad: sent to no caller.
  kDraining,   // Being taken out: no new traffic.
};
// "HEALTHY", "UNHEALTHY", "DRAINING", as the config spells them.
const char* HealthName(Health h);

struct Endpoint {
  std::string address;  // IPv4 or IPv6 literal.
  uint32_t port = 0;
  Locality locality;
  uint32_t weight = 1;
  Health health = Health::kHealthy;
  std::map<std::string, std::string> labels;
};

// A locality with wildcards, written "region/zone/cluster"; a part that is
// "*" or left out matches anything ("us-east", "us-east/*/c1").
struct LocalityPattern {
  std::string region = "*";
  std::string zone = "*";
  std::string cluster = "*";

  bool Matches(const Locality& l) const;
  std::string ToString() const;
};

// Explicit failover: callers in `from` (a region, or region/zone) go, after
// their own region, to `to` in order, then to everything else.
struct FailoverRule {
  LocalityPattern from;
  std::vector<LocalityPattern> to;
  int line = 0;
};

// Distribute: callers matching `from` send each `to` pattern its weight (the
// weights sum to 100); localities matching no pattern get no traffic.
struct DistributeRule {
  LocalityPattern from;
  std::vector<std::pair<LocalityPattern, uint32_t>> to;
  int line = 0;
};

enum class SpilloverMode {
  // Envoy's health-proportional spillover: a level takes
  // min(100 %, healthy % x overprovisioning factor) of the traffic; the rest
  // spills to the next level.
  kProportional,
  // A level takes all traffic while it has any healthy endpoint.
  kFailover,
};

struct LocalityPolicy {
  // At most one of the next four is set (validated).
  // Istio's failoverPriority: label keys ("region", "zone", "cluster" name
  // the locality; others are endpoint labels compared with the caller's).
  std::vector<std::string> failover_priority;
  std::vector<FailoverRule> failover;
  std::vector<DistributeRule> distribute;
  // Envoy's zone-aware routing inside the caller's region.
  bool zone_aware = false;
  // Zone-aware routing needs at least this many healthy endpoints of the
  // destination in the caller's region (Envoy's min_cluster_size).
  uint32_t zone_aware_min_endpoints = 6;

  SpilloverMode spillover = SpilloverMode::kProportional;
  uint32_t overprovisioning_percent = 140;  // Factor 1.4.
  uint32_t panic_threshold_percent = 50;
};

// Active health checking with grpc.health.v1.Health/Check, by the control
// plane. Off unless `enabled`.
struct HealthCheck {
  bool enabled = false;
  int64_t interval_ms = 5000;
  int64_t timeout_ms = 1000;
  uint32_t healthy_threshold = 2;
  uint32_t unhealthy_threshold = 3;
  std::string service_name;  // The HealthCheckRequest.service field.
};

// How a destination's failing backends are ejected (config
// `outlierDetection`; CDS outlier_detection, which gRPC runs, gRFC A50).
// Every field has the built-in default when not given.
struct OutlierDetection {
  int64_t interval_ms = 1000;
  int64_t base_ejection_ms = 5000;
  int64_t max_ejection_ms = 300000;
  uint32_t max_ejection_percent = 100;
  // Failure percentage: eject a backend that fails at least `threshold` %
  // of at least `request_volume` calls in an interval, when at least
  // `minimum_hosts` have that volume; `enforcement_percent` 0 = off.
  uint32_t failure_threshold = 50;
  uint32_t failure_minimum_hosts = 1;
  uint32_t failure_request_volume = 5;
  uint32_t failure_enforcement_percent = 100;
  // Success rate: eject a backend whose success rate is below the mean
  // minus `stdev_factor_milli`/1000 standard deviations; off (enforcement
  // 0) unless the config has `successRate`.
  uint32_t success_stdev_factor_milli = 1900;
  uint32_t success_minimum_hosts = 5;
  uint32_t success_request_volume = 100;
  uint32_t success_enforcement_percent = 0;
};

// Fast failure beyond a number of calls in flight (config
// `circuitBreaker`; CDS circuit_breakers, gRFC A32). 0 = gRPC's default
// (1024).
struct CircuitBreaker {
  uint32_t max_requests = 0;
};

// Endpoints found in DNS (config `dns`, resolved by mesh/source/dns.h):
// the A and AAAA records of `name` with `port`, or (`srv`) the SRV records
// of `name`, each target's addresses with the record's port and weight. The
// locality, and the labels, come from this entry.
struct DnsEndpoints {
  std::string name;   // "app1.cluster-2.example", "_grpc._tcp.app1.example"
  bool srv = false;
  uint32_t port = 0;  // A/AAAA only.
  Locality locality;
  uint32_t weight = 1;  // A/AAAA only; SRV records carry their own.
  std::map<std::string, std::string> labels;
  int line = 0;

  // "srv NAME" or "NAME:PORT": names the entry in status and messages.
  std::string Key() const;
};

// A named group of a service's endpoints, by labels (all must match).
struct Subset {
  std::string name;
  std::map<std::string, std::string> labels;
  // Its own circuit breaker (a subset is a cluster of its own): 0 = the
  // service's.
  uint32_t max_requests = 0;
};

struct HeaderMatch {
  enum class Kind { kExact, kPrefix, kRegex, kPresent, kAbsent };
  std::string name;  // Lowercase.
  Kind kind = Kind::kExact;
  std::string value;  // For kExact, kPrefix, kRegex (RE2 syntax).
  bool invert = false;

  std::string ToString() const;
};

// Who is calling, for routes that apply only to some callers (a route's
// `match.source`). Decided by the control plane when it builds a caller's
// routes: a route whose source does not match is left out of that
// caller's RDS.
struct CallerInfo {
  std::string service;     // MeshOptions::service_name, "name".
  std::string namespace_name = "default";
  std::map<std::string, std::string> labels;  // MeshOptions::labels.
  Locality locality;
  std::string identity;    // The SPIFFE ID of the caller's service.
};

struct SourceMatch {
  bool set = false;            // `source` given.
  std::string service;         // "" = any.
  std::string namespace_name;  // "" = any.
  std::map<std::string, std::string> labels;  // All must match.
  bool has_locality = false;
  LocalityPattern locality;
  std::string identity;  // SPIFFE ID, "spiffe://TD/PREFIX/*" or "" = any.

  bool Matches(const CallerInfo& caller) const;
  std::string ToString() const;
};

struct RouteMatch {
  std::string method;  // Full method "/pkg.Service/Method", or empty.
  std::string prefix;  // Path prefix, e.g. "/pkg.Service/"; empty = any.
  std::vector<HeaderMatch> headers;  // All must match.
  uint32_t percent = 100;            // Share of matching calls taken.
  SourceMatch source;                // Only for these callers.

  // True if every call of every caller matches (so later routes are
  // unreachable).
  bool MatchesEverything() const;
  std::string ToString() const;
};

struct Destination {
  std::string service;  // "name" or "namespace/name"; empty = this service.
  std::string subset;   // Empty = all endpoints.
  uint32_t weight = 100;
};

struct RetryPolicy {
  std::vector<std::string> on;  // gRPC status names, e.g. "unavailable".
  uint32_t num_retries = 2;
  int64_t base_ms = 25;
  int64_t max_ms = 250;
};

struct FaultPolicy {
  int64_t delay_ms = 0;
  uint32_t delay_percent = 0;
  int abort_code = 0;  // gRPC status code; 0 = no abort.
  uint32_t abort_percent = 0;
  bool enabled() const { return delay_percent > 0 || abort_percent > 0; }
};

struct Route {
  std::string name;
  RouteMatch match;
  std::vector<Destination> destinations;  // One, or a weighted split.
  // (No timeout: gRPC 1.51.1 applies route timeouts wrongly; the config
  // refuses `timeout` and says so. See docs/config.md.)
  bool has_retries = false;               // Else the built-in default.
  RetryPolicy retries;
  FaultPolicy fault;
  int line = 0;
};

// Who may call a service: a call is allowed if one rule matches both its
// caller's SPIFFE ID and its method. Patterns: an exact value, a prefix
// ending in "*" ("spiffe://example.org/ns/batch/*", "/pkg.Service/*"), or
// "*" for anything.
struct AuthorizationRule {
  std::vector<std::string> callers;
  std::vector<std::string> methods;  // Empty: every method.
  int line = 0;
};

struct Authorization {
  // false: the section is absent, and any caller whose identity is in the
  // mesh's trust domain is allowed. true: only callers that `allow` names
  // (an empty list denies every call).
  bool set = false;
  std::vector<AuthorizationRule> allow;
};

struct Service {
  std::string name;
  std::string namespace_name = "default";
  // The virtual destination, e.g. "app1.mesh.internal".
  std::string hostname;
  // Optional port of the virtual destination. When set, channels may also be
  // created for "hostname:port". 0 = not set.
  uint32_t port = 0;
  std::vector<Endpoint> endpoints;
  // More endpoints, found in DNS.
  std::vector<DnsEndpoints> dns;
  LocalityPolicy locality_policy;
  HealthCheck health_check;
  OutlierDetection outlier_detection;
  CircuitBreaker circuit_breaker;
  std::vector<Subset> subsets;
  // Evaluated in order, first match wins. A route to the whole service that
  // matches everything always follows them (unless the last one already
  // matches everything).
  std::vector<Route> routes;
  // The SPIFFE ID its servers must present; "" = the default,
  // spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/NAME (see Identity()).
  std::string identity;
  Authorization authorization;

  const Subset* FindSubset(absl::string_view name) const;
  // `identity`, or the default for `trust_domain`.
  std::string Identity(absl::string_view trust_domain) const;
};

// Health known beyond the config (from active health checks), by
// "address:port". Overrides the config's health for the endpoints it names.
using HealthOverrides = std::map<std::string, Health>;

// The guard against the mass removal of registered instances (config
// `registration.removalGuard`, docs/config.md "Registration"). When an
// instance's key goes without it having said goodbye (DRAINING or
// UNHEALTHY first), it is dropped if at most `max_vanish_percent` of its
// locality's instances have vanished within `window`, itself included;
// otherwise it is kept ("held") until it registers again or `max_hold`
// has passed.
struct RemovalGuard {
  uint32_t max_vanish_percent = 50;  // 100 turns the guard off.
  int64_t window_ms = 30000;
  // Localities with fewer instances (live and vanished within the window)
  // are not guarded.
  uint32_t min_instances = 3;
  int64_t max_hold_ms = 300000;
};

// A validated configuration. Immutable once built; shared by pointer.
struct MeshConfig {
  std::string trust_domain;
  std::vector<Service> services;
  RemovalGuard removal_guard;

  // Returns the service whose hostname (or "hostname:port") is `authority`,
  // or nullptr.
  const Service* FindByAuthority(absl::string_view authority) const;
  // The service named `name` ("name" or "namespace/name"), or nullptr.
  const Service* FindByName(absl::string_view name) const;
};

// A service's endpoints published apart from the config (one etcd key per
// cluster, docs/config.md "Sources"): `kind: EndpointSet`.
struct EndpointSet {
  std::string service;  // "namespace/name".
  std::vector<Endpoint> endpoints;
  // `kind: Instance`: one server that registered itself (docs/config.md,
  // "Registration"): exactly one endpoint, the SPIFFE ID it serves with
  // (clients' agents ignore it unless that is the service's identity) and
  // when it started (RFC 3339, for people).
  bool instance = false;
  std::string identity;
  std::string started;
};

// Hard limits on input, so that hostile files cannot exhaust the host.
inline constexpr size_t kMaxConfigBytes = 16 << 20;

// Parses and validates `yaml`. `filename` is used only in messages. On
// failure the status is InvalidArgument and its message lists every problem,
// one per line, as "FILE:LINE:COL: FIELD.PATH: what is wrong".
absl::StatusOr<std::shared_ptr<const MeshConfig>> ParseConfig(
    absl::string_view yaml, absl::string_view filename);

// Parses and validates an endpoint set document:
//   apiVersion: mesh/v1
//   kind: EndpointSet
//   service: app1            # or namespace/app1
//   endpoints: [...]         # as in a service
// Errors are reported like ParseConfig's.
absl::StatusOr<EndpointSet> ParseEndpointSet(absl::string_view yaml,
                                             absl::string_view filename);

// The endpoint set as YAML that ParseEndpointSet reads back (an instance:
// ParseInstance).
std::string EndpointSetToYaml(const EndpointSet& set);

// Parses and validates a registered instance:
//   apiVersion: mesh/v1
//   kind: Instance
//   service: app1            # or namespace/app1
//   identity: spiffe://example.org/ns/default/sa/app1
//   started: "2026-12-06T12:00:00Z"
//   endpoints: [ONE endpoint, as in a service]
absl::StatusOr<EndpointSet> ParseInstance(absl::string_view yaml,
                                          absl::string_view filename);

// Reads `path` (at most kMaxConfigBytes) and calls ParseConfig. Errors reading
// the file are NotFound / PermissionDenied / FailedPrecondition with the path.
absl::StatusOr<std::shared_ptr<const MeshConfig>> LoadConfigFile(
    const std::string& path);

// Reads a whole file (at most `max_bytes`), with errors that name the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             size_t max_bytes);

}  // namespace config
}  // namespace mesh

#endif  // MESH_CONFIG_CONFIG_H_
