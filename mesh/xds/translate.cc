#include "mesh/xds/translate.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"

namespace mesh {
namespace xds {

using envoy::config::cluster::v3::Cluster;
using envoy::config::endpoint::v3::ClusterLoadAssignment;
using envoy::config::listener::v3::Listener;
using envoy::config::route::v3::RouteConfiguration;
using envoy::extensions::filters::network::http_connection_manager::v3::
    HttpConnectionManager;

namespace {

// Built-in defaults (documented in docs/config.md).
constexpr int kRetries = 2;                     // 3 attempts in all.
constexpr int kRetryBaseMs = 25;
constexpr int kRetryMaxMs = 250;

void SetDuration(google::protobuf::Duration* d, int ms) {
  d->set_seconds(ms / 1000);
  d->set_nanos((ms % 1000) * 1000000);
}

constexpr char kFaultFilter[] = "envoy.filters.http.fault";

void AddFault(HttpConnectionManager* hcm) {
  auto* f = hcm->add_http_filters();
  f->set_name(kFaultFilter);
  // No fault by default; routes override it (typed_per_filter_config).
  f->mutable_typed_config()->PackFrom(
      envoy::extensions::filters::http::fault::v3::HTTPFault());
}

void AddRouter(HttpConnectionManager* hcm) {
  auto* f = hcm->add_http_filters();
  f->set_name("envoy.filters.http.router");
  f->mutable_typed_config()->PackFrom(
      envoy::extensions::filters::http::router::v3::Router());
}

void PackHcm(const HttpConnectionManager& hcm, Listener* l) {
  l->mutable_api_listener()->mutable_api_listener()->PackFrom(hcm);
}

using envoy::extensions::transport_sockets::tls::v3::CommonTlsContext;

constexpr char kTlsTransportSocket[] = "envoy.transport_sockets.tls";

// Our identity and the trust bundle, both from the bootstrap's certificate
// provider (files the agent keeps valid; gRPC re-reads them on rotation).
void SetProviders(CommonTlsContext* common) {
  common->mutable_tls_certificate_provider_instance()->set_instance_name(
      std::string(kIdentityProviderInstance));
  common->mutable_validation_context()
      ->mutable_ca_certificate_provider_instance()
      ->set_instance_name(std::string(kRootsProviderInstance));
}

}  // namespace

Caller CallerFromNode(const envoy::config::core::v3::Node& node) {
  Caller c;
  c.id = node.id();
  c.service = node.cluster();
  c.locality.region = node.locality().region();
  c.locality.zone = node.locality().zone();
  c.locality.cluster = node.locality().sub_zone();
  const auto& md = node.metadata().fields();
  auto mtls = md.find(std::string(kMtlsMetadataKey));
  c.mtls = mtls != md.end() && mtls->second.string_value() == "true";
  auto it = md.find("labels");
  if (it != md.end() && it->second.has_struct_value()) {
    for (const auto& [k, v] : it->second.struct_value().fields()) {
      if (v.has_string_value()) c.labels[k] = v.string_value();
    }
  }
  return c;
}

std::string TypeName(absl::string_view type_url) {
  if (type_url == kListenerType) return "LDS";
  if (type_url == kRouteType) return "RDS";
  if (type_url == kClusterType) return "CDS";
  if (type_url == kEndpointType) return "EDS";
  return std::string(type_url);
}

std::string ClusterName(const config::Service& s, absl::string_view subset) {
  return subset.empty() ? absl::StrCat(s.namespace_name, "/", s.name)
                        : absl::StrCat(s.namespace_name, "/", s.name, "/",
                                       subset);
}

config::Service SubsetOf(const config::Service& service,
                         absl::string_view subset) {
  config::Service out = service;
  const config::Subset* sub = service.FindSubset(subset);
  if (subset.empty() || sub == nullptr) return out;
  out.endpoints.clear();
  for (const config::Endpoint& e : service.endpoints) {
    bool match = true;
    for (const auto& [k, v] : sub->labels) {
      auto it = e.labels.find(k);
      match = match && it != e.labels.end() && it->second == v;
    }
    if (match) out.endpoints.push_back(e);
  }
  return out;
}

Listener ClientListener(const config::Service& service,
                        const std::string& name) {
  Listener l;
  l.set_name(name);
  HttpConnectionManager hcm;
  hcm.set_stat_prefix(service.hostname);
  auto* rds = hcm.mutable_rds();
  rds->set_route_config_name(service.hostname);
  rds->mutable_config_source()->mutable_ads();
  rds->mutable_config_source()->set_resource_api_version(
      envoy::config::core::v3::V3);
  // The fault filter costs every call, so only services that inject
  // faults get it.
  for (const config::Route& r : service.routes) {
    if (r.fault.enabled()) {
      AddFault(&hcm);
      break;
    }
  }
  AddRouter(&hcm);
  PackHcm(hcm, &l);
  return l;
}

Listener UnknownHostListener(const std::string& name) {
  // An inline route table without virtual hosts: gRPC fails calls at once
  // with UNAVAILABLE "could not find VirtualHost for NAME in
  // RouteConfiguration" (instead of waiting out its 15 s does-not-exist
  // timer), and recovers by itself when the hostname is added.
  Listener l;
  l.set_name(name);
  HttpConnectionManager hcm;
  hcm.set_stat_prefix("unknown");
  hcm.mutable_route_config()->set_name("mesh-unknown-hostname");
  AddRouter(&hcm);
  PackHcm(hcm, &l);
  return l;
}

absl::StatusOr<Listener> ServerListener(const std::string& name, bool mtls) {
  if (!absl::StartsWith(name, kServerListenerPrefix)) {
    return absl::InvalidArgumentError("not a server listener name: " + name);
  }
  const std::string addr = name.substr(kServerListenerPrefix.size());
  // "IP:PORT" or "[IPv6]:PORT".
  const size_t colon = addr.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(addr.substr(colon + 1), &port) || port == 0 ||
      port > 65535) {
    return absl::InvalidArgumentError("bad listening address in " + name);
  }
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  Listener l;
  l.set_name(name);
  auto* sa = l.mutable_address()->mutable_socket_address();
  sa->set_address(host);
  sa->set_port_value(port);
  HttpConnectionManager hcm;
  hcm.set_stat_prefix("inbound");
  auto* vh = hcm.mutable_route_config()->add_virtual_hosts();
  vh->set_name("inbound");
  vh->add_domains("*");
  auto* route = vh->add_routes();
  route->mutable_match()->set_prefix("");
  route->mutable_non_forwarding_action();
  AddRouter(&hcm);
  auto* fc = l.add_filter_chains();
  fc->set_name("inbound");
  auto* filter = fc->add_filters();
  filter->set_name("envoy.filters.network.http_connection_manager");
  filter->mutable_typed_config()->PackFrom(hcm);
  if (mtls) {
    envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext tls;
    tls.mutable_require_client_certificate()->set_value(true);
    SetProviders(tls.mutable_common_tls_context());
    fc->mutable_transport_socket()->set_name(kTlsTransportSocket);
    fc->mutable_transport_socket()->mutable_typed_config()->PackFrom(tls);
  }
  return l;
}

namespace {

void SetRetry(const config::RetryPolicy& p,
              envoy::config::route::v3::RetryPolicy* retry) {
  retry->set_retry_on(absl::StrJoin(p.on, ","));
  retry->mutable_num_retries()->set_value(p.num_retries);
  SetDuration(retry->mutable_retry_back_off()->mutable_base_interval(),
              static_cast<int>(p.base_ms));
  SetDuration(retry->mutable_retry_back_off()->mutable_max_interval(),
              static_cast<int>(p.max_ms));
}

// The built-in retry policy: a call that fails with UNAVAILABLE (a refused
// or reset backend) or a server-sent CANCELLED (a server shutting down
// cancels calls it had not started) is tried again; by then gRPC has usually
// moved to the next priority, so failover loses no call. A call the client
// itself cancels or whose deadline passes is never retried.
config::RetryPolicy DefaultRetry() {
  config::RetryPolicy p;
  p.on = {"unavailable", "cancelled"};
  p.num_retries = kRetries;
  p.base_ms = kRetryBaseMs;
  p.max_ms = kRetryMaxMs;
  return p;
}

// The legacy HeaderMatcher fields (exact_match, prefix_match,
// safe_regex_match) are deprecated in the Envoy API but are what gRPC 1.51
// reads; use them on purpose.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
void SetMatch(const config::RouteMatch& m,
              envoy::config::route::v3::RouteMatch* out) {
  if (!m.method.empty()) {
    out->set_path(m.method);
  } else {
    out->set_prefix(m.prefix);
  }
  for (const config::HeaderMatch& h : m.headers) {
    auto* hm = out->add_headers();
    hm->set_name(h.name);
    hm->set_invert_match(h.invert);
    switch (h.kind) {
      case config::HeaderMatch::Kind::kExact:
        hm->set_exact_match(h.value);
        break;
      case config::HeaderMatch::Kind::kPrefix:
        hm->set_prefix_match(h.value);
        break;
      case config::HeaderMatch::Kind::kRegex:
        hm->mutable_safe_regex_match()->set_regex(h.value);  // RE2.
        break;
      case config::HeaderMatch::Kind::kPresent:
        hm->set_present_match(true);
        break;
      case config::HeaderMatch::Kind::kAbsent:
        // "Absent" is "present" inverted.
        hm->set_present_match(true);
        hm->set_invert_match(!h.invert);
        break;
    }
  }
  if (m.percent != 100) {
    auto* f = out->mutable_runtime_fraction()->mutable_default_value();
    f->set_numerator(m.percent);
    f->set_denominator(envoy::type::v3::FractionalPercent::HUNDRED);
  }
}
#pragma GCC diagnostic pop

void SetFault(const config::FaultPolicy& fp,
              envoy::config::route::v3::Route* route) {
  envoy::extensions::filters::http::fault::v3::HTTPFault fault;
  if (fp.delay_percent > 0) {
    SetDuration(fault.mutable_delay()->mutable_fixed_delay(),
                static_cast<int>(fp.delay_ms));
    fault.mutable_delay()->mutable_percentage()->set_numerator(
        fp.delay_percent);
    fault.mutable_delay()->mutable_percentage()->set_denominator(
        envoy::type::v3::FractionalPercent::HUNDRED);
  }
  if (fp.abort_percent > 0) {
    fault.mutable_abort()->set_grpc_status(fp.abort_code);
    fault.mutable_abort()->mutable_percentage()->set_numerator(
        fp.abort_percent);
    fault.mutable_abort()->mutable_percentage()->set_denominator(
        envoy::type::v3::FractionalPercent::HUNDRED);
  }
  (*route->mutable_typed_per_filter_config())[kFaultFilter].PackFrom(fault);
}

std::string DestinationCluster(const config::MeshConfig& config,
                               const config::Service& from,
                               const config::Destination& d) {
  const config::Service* target =
      d.service.empty() ? &from : config.FindByName(d.service);
  if (target == nullptr) target = &from;  // Validation rules this out.
  return ClusterName(*target, d.subset);
}

}  // namespace

config::CallerInfo CallerInfoOf(const config::MeshConfig& config,
                                const Caller& caller) {
  config::CallerInfo info;
  info.labels = caller.labels;
  info.locality = caller.locality;
  info.service = caller.service;
  const size_t slash = caller.service.find('/');
  if (slash != std::string::npos) {
    info.namespace_name = caller.service.substr(0, slash);
    info.service = caller.service.substr(slash + 1);
  }
  if (const config::Service* s = config.FindByName(caller.service)) {
    info.namespace_name = s->namespace_name;
    info.service = s->name;
    info.identity = s->Identity(config.trust_domain);
  } else {
    info.identity = absl::StrCat("spiffe://", config.trust_domain, "/ns/",
                                 info.namespace_name, "/sa/", info.service);
  }
  return info;
}

RouteConfiguration RouteConfig(const config::MeshConfig& config,
                               const config::Service& service,
                               const config::CallerInfo& caller) {
  RouteConfiguration rc;
  rc.set_name(service.hostname);
  auto* vh = rc.add_virtual_hosts();
  vh->set_name(service.hostname);
  vh->add_domains(service.hostname);
  if (service.port != 0) {
    vh->add_domains(absl::StrCat(service.hostname, ":", service.port));
  }
  bool catch_all = false;
  for (const config::Route& r : service.routes) {
    if (!r.match.source.Matches(caller)) continue;  // Not for this caller.
    auto* route = vh->add_routes();
    route->set_name(r.name);
    SetMatch(r.match, route->mutable_match());
    auto* action = route->mutable_route();
    if (r.destinations.size() == 1) {
      action->set_cluster(
          DestinationCluster(config, service, r.destinations[0]));
    } else {
      auto* wc = action->mutable_weighted_clusters();
      for (const config::Destination& d : r.destinations) {
        auto* c = wc->add_clusters();
        c->set_name(DestinationCluster(config, service, d));
        c->mutable_weight()->set_value(d.weight);
      }
    }
    SetRetry(r.has_retries ? r.retries : DefaultRetry(),
             action->mutable_retry_policy());
    if (r.fault.enabled()) SetFault(r.fault, route);
    catch_all = catch_all || r.match.MatchesEverything();
  }
  if (!catch_all) {
    auto* route = vh->add_routes();
    route->set_name("default");
    route->mutable_match()->set_prefix("");
    route->mutable_route()->set_cluster(ClusterName(service));
    SetRetry(DefaultRetry(), route->mutable_route()->mutable_retry_policy());
  }
  return rc;
}

Cluster ClusterFor(const config::Service& service, absl::string_view subset,
                   absl::string_view server_identity) {
  Cluster c;
  c.set_name(ClusterName(service, subset));
  c.set_type(Cluster::EDS);
  auto* eds = c.mutable_eds_cluster_config();
  eds->set_service_name(ClusterName(service, subset));
  eds->mutable_eds_config()->mutable_ads();
  eds->mutable_eds_config()->set_resource_api_version(
      envoy::config::core::v3::V3);
  c.set_lb_policy(Cluster::ROUND_ROBIN);
  // Outlier detection (config `outlierDetection`; the built-in defaults: a
  // backend that fails at least half of >= 5 calls in a 1 s interval is
  // ejected for 5 s, times the number of ejections). This is what moves
  // traffic away from a hung backend, which never refuses a connection.
  // Success-rate ejection is off by default: it needs >= 5 hosts with 100
  // calls each and would rarely act. 100 % may be ejected so that a whole
  // failed locality fails over (gRPC applies this per priority).
  const config::OutlierDetection& o = service.outlier_detection;
  auto* od = c.mutable_outlier_detection();
  SetDuration(od->mutable_interval(), o.interval_ms);
  SetDuration(od->mutable_base_ejection_time(), o.base_ejection_ms);
  SetDuration(od->mutable_max_ejection_time(), o.max_ejection_ms);
  od->mutable_max_ejection_percent()->set_value(o.max_ejection_percent);
  od->mutable_enforcing_success_rate()->set_value(
      o.success_enforcement_percent);
  od->mutable_success_rate_stdev_factor()->set_value(
      o.success_stdev_factor_milli);
  od->mutable_success_rate_minimum_hosts()->set_value(
      o.success_minimum_hosts);
  od->mutable_success_rate_request_volume()->set_value(
      o.success_request_volume);
  od->mutable_failure_percentage_threshold()->set_value(o.failure_threshold);
  od->mutable_enforcing_failure_percentage()->set_value(
      o.failure_enforcement_percent);
  od->mutable_failure_percentage_minimum_hosts()->set_value(
      o.failure_minimum_hosts);
  od->mutable_failure_percentage_request_volume()->set_value(
      o.failure_request_volume);
  // Circuit breaking (config `circuitBreaker`, gRFC A32): calls beyond
  // max_requests in flight fail at once with UNAVAILABLE.
  // A subset may have its own.
  uint32_t max_requests = service.circuit_breaker.max_requests;
  if (const config::Subset* sub = service.FindSubset(subset);
      sub != nullptr && sub->max_requests > 0) {
    max_requests = sub->max_requests;
  }
  if (max_requests > 0) {
    auto* t = c.mutable_circuit_breakers()->add_thresholds();
    t->set_priority(envoy::config::core::v3::DEFAULT);
    t->mutable_max_requests()->set_value(max_requests);
  }
  // Per-locality call counts for the application's metrics: gRPC reports
  // them to this control plane (mesh/xds/lrs_server.h).
  c.mutable_lrs_server()->mutable_self();
  if (!server_identity.empty()) {
    envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext tls;
    SetProviders(tls.mutable_common_tls_context());
    // The server must present exactly this SPIFFE ID. gRPC 1.51.1 silently
    // ignores the newer match_typed_subject_alt_names (any certificate of
    // the CA would pass), so the deprecated field it does enforce is used;
    // SecurityE2eTest.ServerWithAnotherIdentityFromTheSameCaIsRefused
    // keeps this honest.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    tls.mutable_common_tls_context()
        ->mutable_validation_context()
        ->add_match_subject_alt_names()
        ->set_exact(std::string(server_identity));
#pragma GCC diagnostic pop
    c.mutable_transport_socket()->set_name(kTlsTransportSocket);
    c.mutable_transport_socket()->mutable_typed_config()->PackFrom(tls);
  }
  return c;
}

policy::Plan PlanFor(const config::MeshConfig& config,
                     const config::Service& service, const Caller& caller,
                     const config::HealthOverrides& health) {
  policy::Caller pc;
  pc.locality = caller.locality;
  pc.labels = caller.labels;
  pc.own_service =
      caller.service.empty() ? nullptr : config.FindByName(caller.service);
  return policy::ComputePlan(service, pc, health);
}

ClusterLoadAssignment LoadAssignmentFor(const config::MeshConfig& config,
                                        const config::Service& service,
                                        const Caller& caller,
                                        const config::HealthOverrides& health,
                                        absl::string_view subset) {
  ClusterLoadAssignment cla;
  cla.set_cluster_name(ClusterName(service, subset));
  // A subset is its own endpoints under the service's locality policy, so a
  // split between subsets stays locality-aware inside each.
  const policy::Plan plan =
      subset.empty() ? PlanFor(config, service, caller, health)
                     : PlanFor(config, SubsetOf(service, subset), caller,
                               health);
  for (size_t p = 0; p < plan.priorities.size(); ++p) {
    for (const policy::LocalityGroup& g : plan.priorities[p].localities) {
      auto* lle = cla.add_endpoints();
      lle->set_priority(static_cast<uint32_t>(p));
      lle->mutable_locality()->set_region(g.locality.region);
      lle->mutable_locality()->set_zone(g.locality.zone);
      lle->mutable_locality()->set_sub_zone(g.locality.cluster);
      lle->mutable_load_balancing_weight()->set_value(g.weight);
      for (const policy::EndpointRef& e : g.endpoints) {
        auto* lb = lle->add_lb_endpoints();
        lb->set_health_status(envoy::config::core::v3::HEALTHY);
        auto* sa = lb->mutable_endpoint()->mutable_address()
                       ->mutable_socket_address();
        sa->set_address(e.address);
        sa->set_port_value(e.port);
      }
    }
  }
  return cla;
}

std::map<std::string, google::protobuf::Any> Translate(
    const config::MeshConfig& config, const Caller& caller,
    absl::string_view type_url, const std::vector<std::string>& names,
    const config::HealthOverrides& health) {
  std::map<std::string, google::protobuf::Any> out;
  auto wanted = [&names](const std::string& name) {
    if (names.empty()) return true;
    for (const std::string& n : names) {
      if (n == name) return true;
    }
    return false;
  };
  if (type_url == kListenerType) {
    for (const std::string& name : names) {
      if (absl::StartsWith(name, kServerListenerPrefix)) {
        absl::StatusOr<Listener> l = ServerListener(name, caller.mtls);
        if (l.ok()) out[name].PackFrom(*l);
      } else if (const config::Service* s = config.FindByAuthority(name)) {
        out[name].PackFrom(ClientListener(*s, name));
      } else {
        out[name].PackFrom(UnknownHostListener(name));
      }
    }
    if (names.empty()) {
      for (const config::Service& s : config.services) {
        out[s.hostname].PackFrom(ClientListener(s, s.hostname));
      }
    }
  } else if (type_url == kRouteType) {
    for (const config::Service& s : config.services) {
      if (wanted(s.hostname)) {
        out[s.hostname].PackFrom(
            RouteConfig(config, s, CallerInfoOf(config, caller)));
      }
    }
  } else {
    // Every cluster: each service and each of its subsets. A subset stays
    // available while it is defined, even if no route uses it any more: a
    // client still routing to it (its RDS update may come after this CDS
    // one) keeps working until it unsubscribes (make before break).
    std::map<std::string, std::pair<const config::Service*, std::string>>
        clusters;
    for (const config::Service& s : config.services) {
      clusters[ClusterName(s)] = {&s, ""};
      for (const config::Subset& sub : s.subsets) {
        clusters[ClusterName(s, sub.name)] = {&s, sub.name};
      }
    }
    for (const auto& [name, target] : clusters) {
      if (!wanted(name)) continue;
      const auto& [s, subset] = target;
      if (type_url == kClusterType) {
        out[name].PackFrom(ClusterFor(
            *s, subset,
            caller.mtls ? s->Identity(config.trust_domain) : std::string()));
      } else if (type_url == kEndpointType) {
        out[name].PackFrom(
            LoadAssignmentFor(config, *s, caller, health, subset));
      }
    }
  }
  return out;
}

}  // namespace xds
}  // namespace mesh
