#include "mesh/admin.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "mesh/common/json.h"
#include "mesh/config/yaml.h"
#include "mesh/telemetry/prometheus.h"

namespace mesh {
namespace internal {

namespace {

std::string Time(absl::Time t) {
  if (t == absl::InfinitePast()) return "null";
  return JsonString(absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone()));
}

std::string TimeText(absl::Time t) {
  if (t == absl::InfinitePast()) return "never";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

// Localities of a destination in plan order (priority, then name), then
// any that served calls but are not in the plan (e.g. "unknown").
struct Row {
  int priority = -1;
  double share = 0;
  std::string locality;
  std::vector<std::string> endpoints;
  uint64_t completed = 0, succeeded = 0, recent = 0;
};

std::vector<Row> Rows(const DestinationView& d, uint64_t* recent_total) {
  std::map<std::pair<int, std::string>, Row> rows;
  std::map<std::string, int> prio_of;
  if (d.endpoints != nullptr) {
    d.endpoints->ForEach(
        [&](const std::string& ep, const telemetry::Placement& p) {
          Row& r = rows[{p.priority, p.locality}];
          r.priority = p.priority;
          r.share = p.share;
          r.locality = p.locality;
          r.endpoints.push_back(ep);
          prio_of.emplace(p.locality, p.priority);
        });
  }
  for (auto& [k, r] : rows) std::sort(r.endpoints.begin(), r.endpoints.end());
  *recent_total = 0;
  for (const auto& [loc, c] : d.calls.by_locality) {
    auto it = prio_of.find(loc);
    Row& r = rows[{it == prio_of.end() ? 1000 : it->second, loc}];
    if (it == prio_of.end()) r.locality = loc;
    r.completed = c.first;
    r.succeeded = c.second;
  }
  for (const auto& [loc, c] : d.recent.by_locality) {
    auto it = prio_of.find(loc);
    Row& r = rows[{it == prio_of.end() ? 1000 : it->second, loc}];
    if (it == prio_of.end()) r.locality = loc;
    r.recent = c.first;
    *recent_total += c.first;
  }
  std::vector<Row> out;
  for (auto& [k, r] : rows) out.push_back(std::move(r));
  return out;
}

std::string DestinationJson(const DestinationView& d) {
  uint64_t recent_total = 0;
  std::vector<std::string> locs;
  for (const Row& r : Rows(d, &recent_total)) {
    std::vector<std::string> eps;
    for (const std::string& e : r.endpoints) eps.push_back(JsonString(e));
    locs.push_back(absl::StrCat(
        "{\"locality\":", JsonString(r.locality), ",\"priority\":",
        r.priority < 0 || r.priority >= 1000 ? "null"
                                             : absl::StrCat(r.priority),
        ",\"plan_share\":", absl::StrFormat("%.1f", r.share),
        ",\"endpoints\":[", absl::StrJoin(eps, ","), "],\"completed\":",
        r.completed, ",\"succeeded\":", r.succeeded, ",\"recent_completed\":",
        r.recent, ",\"recent_share\":",
        absl::StrFormat("%.1f", recent_total == 0
                                    ? 0.0
                                    : 100.0 * r.recent / recent_total),
        "}"));
  }
  std::vector<std::string> excluded;
  for (const std::string& x : d.excluded) excluded.push_back(JsonString(x));
  return absl::StrCat(
      "{\"hostname\":", JsonString(d.hostname), ",\"xds_version\":",
      JsonString(d.xds_version), ",\"calls_started\":", d.calls.started,
      ",\"calls_dropped\":", d.calls.dropped,
      ",\"recent_seconds\":", absl::StrFormat("%.1f", d.recent_seconds),
      ",\"localities\":[", absl::StrJoin(locs, ","), "],\"excluded\":[",
      absl::StrJoin(excluded, ","), "],\"plan\":",
      d.plan_json.empty() ? "null" : d.plan_json, "}");
}

std::string YamlToJson(const config::yaml::Node& n, int depth) {
  if (depth > 64) return "null";
  switch (n.Type()) {
    case config::yaml::NodeType::kMap: {
      std::vector<std::string> kv;
      for (const auto& e : n) {
        kv.push_back(absl::StrCat(
            JsonString(e.first.IsScalar() ? e.first.Scalar() : "?"), ":",
            YamlToJson(e.second, depth + 1)));
      }
      return absl::StrCat("{", absl::StrJoin(kv, ","), "}");
    }
    case config::yaml::NodeType::kSequence: {
      std::vector<std::string> items;
      for (size_t i = 0; i < n.size(); ++i) {
        items.push_back(YamlToJson(n[i], depth + 1));
      }
      return absl::StrCat("[", absl::StrJoin(items, ","), "]");
    }
    case config::yaml::NodeType::kScalar: {
      // Numbers and booleans as YAML writes them (plain); quoted text
      // stays a string.
      const std::string& s = n.Scalar();
      int64_t i;
      if (n.IsPlain() && absl::SimpleAtoi(s, &i) &&
          s.find_first_not_of("-0123456789") == std::string::npos) {
        return s;
      }
      if (n.IsPlain() && (s == "true" || s == "false")) return s;
      return JsonString(s);
    }
    default:
      return "null";
  }
}

}  // namespace

std::string ClustersJson(const AdminView& v) {
  std::vector<std::string> ds;
  for (const DestinationView& d : v.destinations) {
    ds.push_back(DestinationJson(d));
  }
  return absl::StrCat("{\"destinations\":[", absl::StrJoin(ds, ","), "]}");
}

std::string StatusJson(const AdminView& v) {
  const MeshStatus& s = v.status;
  std::vector<std::string> events;
  for (const Event& e : v.events) {
    events.push_back(absl::StrCat("{\"time\":", Time(e.time), ",\"text\":",
                                  JsonString(e.text), "}"));
  }
  std::vector<std::string> ds;
  for (const DestinationView& d : v.destinations) {
    ds.push_back(DestinationJson(d));
  }
  std::vector<std::string> servers;
  for (const ServerStatus& srv : s.servers) {
    servers.push_back(absl::StrCat(
        "{\"address\":", JsonString(srv.address),
        ",\"service\":", JsonString(srv.service),
        ",\"enforcing\":", srv.enforcing ? "true" : "false",
        ",\"problem\":", JsonString(srv.problem),
        ",\"policy\":", JsonString(srv.policy), "}"));
  }
  std::vector<std::string> registrations;
  for (const RegistrationStatus& r : s.registrations) {
    registrations.push_back(absl::StrCat(
        "{\"listen\":", JsonString(r.listen), ",\"key\":", JsonString(r.key),
        ",\"lease\":", r.lease, ",\"ttl_left\":", r.ttl_left,
        ",\"last_keepalive\":", Time(r.last_keepalive),
        ",\"registrations\":", r.registrations,
        ",\"state\":", JsonString(r.state),
        ",\"error\":", JsonString(r.error), "}"));
  }
  std::vector<std::string> instances;
  for (const ServiceInstances& i : s.instances) {
    instances.push_back(absl::StrCat(
        "{\"service\":", JsonString(i.service), ",\"declared\":", i.declared,
        ",\"endpoint_set\":", i.endpoint_set, ",\"dns\":", i.dns,
        ",\"registered\":", i.registered, ",\"held\":", i.held, "}"));
  }
  auto strings = [](const std::vector<std::string>& v) {
    std::vector<std::string> out;
    for (const std::string& x : v) out.push_back(JsonString(x));
    return absl::StrCat("[", absl::StrJoin(out, ","), "]");
  };
  std::vector<std::string> sources;
  for (const SourceStatus& src : s.sources) {
    sources.push_back(absl::StrCat(
        "{\"name\":", JsonString(src.name), ",\"ok\":",
        src.ok ? "true" : "false", ",\"where\":", JsonString(src.where),
        ",\"version\":", JsonString(src.version),
        ",\"last_success\":", Time(src.last_success),
        ",\"last_error\":", JsonString(src.last_error),
        ",\"last_error_time\":", Time(src.last_error_time), "}"));
  }
  return absl::StrCat(
      "{\"security\":", JsonString(s.security), ",\"mtls\":",
      s.mtls ? "true" : "false", ",\"identity\":", JsonString(s.identity),
      ",\"identity_serial\":", JsonString(s.identity_serial),
      ",\"identity_expiry\":", Time(s.identity_expiry),
      ",\"identity_loads\":", s.identity_loads,
      ",\"authorization\":", JsonString(s.authorization),
      ",\"calls_authorized\":", s.calls_authorized,
      ",\"calls_denied\":", s.calls_denied,
      ",\"last_denial\":", JsonString(s.last_denial),
      ",\"servers\":[", absl::StrJoin(servers, ","),
      "],\"servers_failing_closed\":", s.servers_failing_closed,
      ",\"registrations\":[", absl::StrJoin(registrations, ","), "]",
      ",\"instances\":[", absl::StrJoin(instances, ","), "]",
      ",\"ignored_instances\":", strings(s.ignored_instances),
      ",\"held_instances\":", strings(s.held_instances),
      ",\"config_version\":", JsonString(s.config_version),
      ",\"applied_version\":", JsonString(s.applied_version),
      ",\"stale\":", s.config_stale ? "true" : "false",
      ",\"stale_reason\":", JsonString(s.config_stale_reason),
      ",\"config_time\":", Time(v.config_time),
      ",\"configs_applied\":", s.configs_applied,
      ",\"configs_rejected\":", s.configs_rejected,
      ",\"sources\":[", absl::StrJoin(sources, ","),
      "],\"last_error\":", JsonString(s.last_error),
      ",\"last_error_time\":", Time(s.last_error_time),
      ",\"nacks\":", s.nacks, ",\"health_changes\":", s.health_changes,
      ",\"last_health_change\":", JsonString(s.last_health_change),
      ",\"control_plane\":{\"running\":",
      s.control_plane_running ? "true" : "false", ",\"pid\":",
      s.control_plane_pid, ",\"restarts\":", s.control_plane_restarts,
      "},\"events\":[", absl::StrJoin(events, ","), "],\"destinations\":[",
      absl::StrJoin(ds, ","), "]}");
}

std::string StatusText(const AdminView& v) {
  const MeshStatus& s = v.status;
  std::string out;
  absl::StrAppend(&out, "security       ", s.security, "\n");
  if (s.mtls) {
    absl::StrAppend(&out, "identity       ", s.identity, " (serial ",
                    s.identity_serial, ", expires ",
                    TimeText(s.identity_expiry), ")\n",
                    "authorization  ", s.authorization, "; ",
                    s.calls_authorized, " allowed, ", s.calls_denied,
                    " denied",
                    s.last_denial.empty() ? ""
                                          : " (last: " + s.last_denial + ")",
                    "\n");
  }
  for (const ServerStatus& srv : s.servers) {
    absl::StrAppend(&out, "server         ", srv.address, " ",
                    srv.enforcing
                        ? absl::StrCat("serves ", srv.service)
                        : absl::StrCat("DENIES EVERY CALL: ", srv.problem),
                    "\n");
  }
  absl::StrAppend(
      &out, "config         version ", s.config_version, " from ",
      v.config_path, ", applied ", TimeText(v.config_time), "; ",
      s.configs_applied, " applied, ", s.configs_rejected,
      " rejected; stale: ",
      s.config_stale ? "YES (last-known-good copy; a source failed)" : "no",
      "\n");
  for (const SourceStatus& src : s.sources) {
    absl::StrAppend(
        &out, "source         ", src.name, " ", src.where, ": ",
        src.ok ? "ok" : "FAILING", ", ", src.version.empty() ? "-" : src.version,
        ", last success ", TimeText(src.last_success),
        src.last_error.empty()
            ? ""
            : absl::StrCat("; last error ", TimeText(src.last_error_time),
                           ": ", src.last_error.substr(0, src.last_error.find('\n'))),
        "\n");
  }
  for (const RegistrationStatus& r : s.registrations) {
    absl::StrAppend(&out, "registration   ", r.listen, " ", r.state,
                    r.key.empty() ? "" : " as " + r.key,
                    r.lease == 0 ? ""
                                 : absl::StrCat(" (lease ", r.lease, ", TTL ",
                                                r.ttl_left, " s left)"),
                    r.error.empty() ? "" : ": " + r.error, "\n");
  }
  for (const ServiceInstances& i : s.instances) {
    absl::StrAppend(&out, "instances      ", i.service, ": ", i.declared,
                    " declared, ", i.endpoint_set, " from endpoint sets, ",
                    i.dns, " from DNS, ", i.registered, " registered",
                    i.held == 0 ? "" : absl::StrCat(", ", i.held, " HELD"),
                    "\n");
  }
  for (const std::string& l : s.held_instances) {
    absl::StrAppend(&out, "held           ", l, "\n");
  }
  for (const std::string& l : s.ignored_instances) {
    absl::StrAppend(&out, "ignored        ", l, "\n");
  }
  absl::StrAppend(
      &out, "xDS            applied ",
      s.applied_version.empty() ? "(nothing yet)" : s.applied_version, "; ",
      s.nacks, " NACKs\n", "control plane  ",
      s.control_plane_running
          ? absl::StrCat("running (pid ", s.control_plane_pid, ")")
          : "DOWN",
      ", ", s.control_plane_restarts, " restarts\n", "last error     ",
      s.last_error.empty()
          ? "none"
          : absl::StrCat(TimeText(s.last_error_time), ": ", s.last_error),
      "\n");
  for (const DestinationView& d : v.destinations) {
    uint64_t recent_total = 0;
    const std::vector<Row> rows = Rows(d, &recent_total);
    absl::StrAppend(&out, "\n", d.hostname, "  (xDS ",
                    d.xds_version.empty() ? "-" : d.xds_version, ", ",
                    d.calls.started, " calls started",
                    d.calls.dropped == 0
                        ? ""
                        : absl::StrCat(", ", d.calls.dropped,
                                       " DROPPED by the circuit breaker"),
                    ")\n");
    absl::StrAppend(&out, absl::StrFormat("  %-4s %-32s %6s %9s %9s %7s  %s\n",
                                          "PRIO", "LOCALITY", "WEIGHT",
                                          "TRAFFIC", "OK", "FAILED",
                                          "ENDPOINTS"));
    for (const Row& r : rows) {
      absl::StrAppend(
          &out,
          absl::StrFormat(
              "  %-4s %-32s %5.1f%% %8.1f%% %9d %7d  %s\n",
              r.priority < 0 || r.priority >= 1000 ? "-"
                                                   : absl::StrCat(r.priority),
              r.locality, r.share,
              recent_total == 0 ? 0.0 : 100.0 * r.recent / recent_total,
              r.succeeded, r.completed - r.succeeded,
              absl::StrJoin(r.endpoints, " ")));
    }
    for (const std::string& x : d.excluded) {
      absl::StrAppend(&out, "  excluded: ", x, "\n");
    }
  }
  if (!v.events.empty()) {
    absl::StrAppend(&out, "\nrecent events\n");
    for (const Event& e : v.events) {
      absl::StrAppend(&out, "  ", TimeText(e.time), "  ", e.text, "\n");
    }
  }
  absl::StrAppend(&out, "\n(TRAFFIC: share of call attempts in the last ",
                  v.destinations.empty()
                      ? std::string("10")
                      : absl::StrFormat("%.0f",
                                        v.destinations[0].recent_seconds),
                  " s; OK/FAILED: attempts since the start, from gRPC's load "
                  "reports; WEIGHT: the locality's share of its priority)\n");
  return out;
}

std::string ConfigJson(const AdminView& v) {
  absl::StatusOr<config::yaml::Document> doc = config::yaml::Document::Parse(
      v.config_text == nullptr ? "" : *v.config_text, v.config_path);
  if (!doc.ok()) {
    return absl::StrCat("{\"version\":", JsonString(v.status.config_version),
                        ",\"error\":", JsonString(doc.status().message()),
                        "}");
  }
  const std::string body = YamlToJson(doc->root(), 0);
  return absl::StrCat("{\"version\":", JsonString(v.status.config_version),
                      ",\"path\":", JsonString(v.config_path),
                      ",\"config\":", body, "}");
}

std::string StatusPrometheus(const AdminView& v) {
  const MeshStatus& s = v.status;
  telemetry::PrometheusWriter w;
  auto one = [&w](const char* name, const char* type, const char* help,
                  double value,
                  const telemetry::PrometheusWriter::Labels& labels = {}) {
    w.Family(name, type, help);
    w.Sample(name, labels, value);
  };
  one("mesh_config_applied_total", "counter",
      "Config versions applied, by source.", s.configs_applied,
      {{"source", v.config_path.empty() ? "etcd" : "file"}});
  one("mesh_config_rejected_total", "counter",
      "Config edits rejected by validation (the previous one stayed), by "
      "source.",
      s.configs_rejected, {{"source", v.config_path.empty() ? "etcd" : "file"}});
  w.Family("mesh_config_source_up", "gauge",
           "1 if the config source's last attempt succeeded.");
  for (const SourceStatus& src : s.sources) {
    w.Sample("mesh_config_source_up", {{"source", src.name}}, src.ok ? 1 : 0);
  }
  w.Family("mesh_config_source_last_success_seconds", "gauge",
           "Unix time of the config source's last success.");
  for (const SourceStatus& src : s.sources) {
    w.Sample("mesh_config_source_last_success_seconds", {{"source", src.name}},
             src.last_success == absl::InfinitePast()
                 ? 0
                 : absl::ToDoubleSeconds(src.last_success -
                                         absl::UnixEpoch()));
  }
  one("mesh_config_stale", "gauge",
      "1 if the running config is a last-known-good copy rather than a "
      "source's current one.",
      s.config_stale ? 1 : 0);
  one("mesh_xds_nacks_total", "counter",
      "xDS responses this process's gRPC rejected.", s.nacks);
  one("mesh_health_changes_total", "counter",
      "Endpoint health changes made by active health checks.",
      s.health_changes);
  one("mesh_control_plane_up", "gauge", "1 while the mesh agent runs.",
      s.control_plane_running ? 1 : 0);
  one("mesh_control_plane_restarts_total", "counter",
      "Times the mesh agent was restarted.", s.control_plane_restarts);
  one("mesh_authz_allowed_total", "counter",
      "Calls to this process's mesh servers that authorization allowed.",
      s.calls_authorized);
  one("mesh_authz_denied_total", "counter",
      "Calls to this process's mesh servers denied by authorization "
      "(PERMISSION_DENIED).",
      s.calls_denied);
  one("mesh_servers_failing_closed", "gauge",
      "Listening addresses of this process's mesh servers that deny every "
      "call because the policy to enforce cannot be told (see /status).",
      static_cast<double>(s.servers_failing_closed));
  w.Family("mesh_server_enforcing", "gauge",
           "Per listening address: 1 if it enforces its service's policy, 0 "
           "if it denies every call.");
  for (const ServerStatus& srv : s.servers) {
    w.Sample("mesh_server_enforcing",
             {{"address", srv.address}, {"service", srv.service}},
             srv.enforcing ? 1 : 0);
  }
  w.Family("mesh_registration_registered", "gauge",
           "Per registered listening address: 1 while its instance is in "
           "etcd (registered or draining), 0 otherwise.");
  w.Family("mesh_registration_registrations_total", "counter",
           "Per listening address: puts on a new lease (more than 1: the "
           "lease was lost and granted again).");
  for (const RegistrationStatus& r : s.registrations) {
    w.Sample("mesh_registration_registered",
             {{"listen", r.listen}, {"state", r.state}},
             r.state == "registered" || r.state == "draining" ? 1 : 0);
    w.Sample("mesh_registration_registrations_total", {{"listen", r.listen}},
             static_cast<double>(r.registrations));
  }
  w.Family("mesh_instances", "gauge",
           "Endpoints of each service in the config in force, by origin: "
           "declared, endpoint_set, dns, registered, held (registered "
           "instances the mass-removal guard keeps after their keys went).");
  for (const ServiceInstances& i : s.instances) {
    for (const auto& [origin, n] :
         {std::pair<const char*, int>{"declared", i.declared},
          {"endpoint_set", i.endpoint_set},
          {"dns", i.dns},
          {"registered", i.registered},
          {"held", i.held}}) {
      w.Sample("mesh_instances", {{"service", i.service}, {"origin", origin}},
               n);
    }
  }
  one("mesh_instances_held", "gauge",
      "Registered instances the mass-removal guard keeps although their "
      "keys went (see /status held_instances).",
      static_cast<double>(s.held_instances.size()));
  one("mesh_instances_ignored", "gauge",
      "Registered instances left out of the config (see /status "
      "ignored_instances).",
      static_cast<double>(s.ignored_instances.size()));
  if (s.mtls) {
    one("mesh_identity_expiry_timestamp_seconds", "gauge",
        "When this workload's certificate expires (Unix time).",
        static_cast<double>(absl::ToUnixSeconds(s.identity_expiry)),
        {{"identity", s.identity}});
  }
  w.Family("mesh_endpoints", "gauge",
           "Endpoints of each destination: in its plan (healthy), or "
           "excluded (unhealthy or draining).");
  for (const DestinationView& d : v.destinations) {
    w.Sample("mesh_endpoints", {{"destination", d.hostname}, {"state", "healthy"}},
             d.endpoints == nullptr ? 0 : d.endpoints->size());
    w.Sample("mesh_endpoints",
             {{"destination", d.hostname}, {"state", "excluded"}},
             d.excluded.size());
  }
  return w.Text();
}

}  // namespace internal
}  // namespace mesh
