// meshctl: the mesh command-line tool.
//
//   meshctl validate FILE...   check config files; exit 0 if all are valid
//                              (one summary line each on stdout), 1 if any
//                              is not (every problem on stderr), 2 on bad
//                              usage.
//   meshctl explain --config FILE --from REGION/ZONE/CLUSTER
//           [--service NAME] [--label KEY=VALUE]...
//           [--method /pkg.Service/Method] [--header KEY=VALUE]... HOSTNAME
//                              print how a caller in that locality reaches
//                              HOSTNAME: with --method, the route a call
//                              takes and its destinations; for each
//                              destination the priorities, localities,
//                              weights and the rule and numbers behind them.
//   meshctl dev-certs --dir DIR --trust-domain TD [--namespace NS]
//           [--valid-hours N] [--server-name DNS]... SERVICE...
//                              make a throwaway CA (DIR/ca.pem) and an
//                              X.509-SVID per service (DIR/SERVICE.pem,
//                              DIR/SERVICE.key) with the identity
//                              spiffe://TD/ns/NS/sa/SERVICE, for local
//                              development and the demo; never for
//                              production (the CA key is thrown away).
//                              --server-name also makes an ordinary TLS
//                              server certificate with those DNS names
//                              (DIR/server.pem, DIR/server.key), e.g. for
//                              the gateway's outside-facing port.
//   meshctl status ADDRESS [--json]
//                              what a running application's mesh is doing,
//                              from its admin endpoint (MeshOptions::
//                              admin_address: HOST:PORT or unix:PATH): a
//                              table per destination, or the JSON.
//
// It never crashes on any input: every file goes through the same validating
// loader as the library, which turns all problems into messages.

#include <stdlib.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "mesh/config/config.h"
#include "mesh/config/snapshot.h"
#include "mesh/config/yaml.h"
#include "mesh/identity/dev_ca.h"
#include "mesh/identity/svid.h"
#include "mesh/source/compose.h"
#include "mesh/source/etcd_client.h"
#include "mesh/source/etcd_source.h"
#include "mesh/telemetry/http_get.h"
#include "mesh/policy/route_match.h"
#include "mesh/xds/translate.h"

namespace {

constexpr char kUsage[] =
    "usage: meshctl validate FILE...   (configs and endpoint sets)\n"
    "       meshctl explain [--config FILE] [--etcd ENDPOINTS [--prefix P]\n"
    "               [ETCD FLAGS]] --from REGION/ZONE/CLUSTER\n"
    "               [--service NAME] [--label KEY=VALUE]...\n"
    "               [--method /pkg.Service/Method] [--header KEY=VALUE]...\n"
    "               HOSTNAME\n"
    "\n"
    "  validate  check mesh config files (schema mesh/v1, see\n"
    "            docs/config.md); exit 0 if all are valid, 1 if not\n"
    "  explain   show the priorities, localities and weights a caller in\n"
    "            the given locality (running as service NAME, with the\n"
    "            given labels) gets for HOSTNAME, and why; with --method\n"
    "            (and --header), which route such a call takes first; and\n"
    "            where each endpoint came from (the file, an endpoint set,\n"
    "            a registered instance, DNS); with --etcd, what etcd holds\n"
    "            is composed with the file as an agent would\n"
    "       meshctl dev-certs --dir DIR --trust-domain TD [--namespace NS]\n"
    "               [--valid-hours N] [--server-name DNS]... SERVICE...\n"
    "  dev-certs make a throwaway CA (DIR/ca.pem) and an SVID per service\n"
    "            (DIR/SERVICE.pem, DIR/SERVICE.key) for development only;\n"
    "            --server-name adds a TLS server certificate with those DNS\n"
    "            names (DIR/server.pem, DIR/server.key)\n"
    "       meshctl status ADDRESS [--json]\n"
    "  status    show a running application's mesh (its admin endpoint,\n"
    "            HOST:PORT or unix:PATH): config, security, and per\n"
    "            destination the localities, their traffic and health\n"
    "       meshctl put --etcd ENDPOINTS [--prefix /mesh/] [--set NAME]\n"
    "               [ETCD FLAGS] FILE\n"
    "  put       publish a config document (to PREFIX/config) or an endpoint\n"
    "            set, kind: EndpointSet (to PREFIX/endpoints/NS/NAME/SET;\n"
    "            SET defaults to its endpoints' cluster) in etcd; it is\n"
    "            validated first, and composed with what etcd already holds:\n"
    "            nothing is written if that fails\n"
    "       meshctl get --etcd ENDPOINTS [--prefix /mesh/] [ETCD FLAGS]\n"
    "  get       print every key under the prefix with its value, the\n"
    "            registered instances with their leases' TTL left, and the\n"
    "            version they compose to\n"
    "  ETCD FLAGS: --etcd-ca FILE --etcd-cert FILE --etcd-key FILE\n"
    "            --etcd-server-name NAME --etcd-user NAME\n"
    "            --etcd-password-file FILE (docs/config.md, \"etcd\")\n";

// Resolves `path` against the directory bazel run was started from.
std::string UserPath(std::string path) {
  const char* cwd = getenv("BUILD_WORKING_DIRECTORY");
  if (cwd != nullptr && !path.empty() && path[0] != '/') {
    path = std::string(cwd) + "/" + path;
  }
  return path;
}

struct EtcdFlags {
  mesh::source::EtcdOptions etcd;
  std::string prefix = "/mesh/";
  std::string set;
  std::vector<std::string> rest;  // Positional arguments.
};

bool ParseEtcdFlags(const char* cmd, int argc, char** argv, EtcdFlags* f) {
  std::string password_file;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    const size_t eq = a.find('=');
    if (absl::StartsWith(a, "--") && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (absl::StartsWith(a, "--") && i + 1 < argc) {
      v = argv[++i];
    } else if (absl::StartsWith(a, "--")) {
      std::cerr << "meshctl " << cmd << ": " << a << " needs a value\n";
      return false;
    } else {
      f->rest.push_back(UserPath(a));
      continue;
    }
    if (a == "--etcd") {
      f->etcd.endpoints = absl::StrSplit(v, ',', absl::SkipEmpty());
    } else if (a == "--prefix") {
      f->prefix = v;
    } else if (a == "--set") {
      f->set = v;
    } else if (a == "--etcd-ca") {
      f->etcd.ca_file = UserPath(v);
    } else if (a == "--etcd-cert") {
      f->etcd.cert_file = UserPath(v);
    } else if (a == "--etcd-key") {
      f->etcd.key_file = UserPath(v);
    } else if (a == "--etcd-server-name") {
      f->etcd.server_name = v;
    } else if (a == "--etcd-user") {
      f->etcd.username = v;
    } else if (a == "--etcd-password-file") {
      password_file = UserPath(v);
    } else {
      std::cerr << "meshctl " << cmd << ": unknown flag " << a << "\n"
                << kUsage;
      return false;
    }
  }
  if (f->etcd.endpoints.empty()) {
    std::cerr << "meshctl " << cmd << ": --etcd HOST:PORT[,...] is required\n";
    return false;
  }
  if (!password_file.empty()) {
    absl::StatusOr<std::string> pw =
        mesh::config::ReadFileToString(password_file, 4096);
    if (!pw.ok()) {
      std::cerr << "meshctl " << cmd << ": " << pw.status().message() << "\n";
      return false;
    }
    f->etcd.password = std::string(absl::StripTrailingAsciiWhitespace(*pw));
  }
  return true;
}

// Lists the prefix into a composer (as the etcd source would).
absl::StatusOr<int64_t> LoadEtcd(mesh::source::EtcdClient& client,
                                 const std::string& prefix,
                                 mesh::source::Composer* comp,
                                 std::vector<mesh::source::EtcdKv>* kvs) {
  absl::StatusOr<mesh::source::EtcdClient::Listing> l = client.List(prefix);
  if (!l.ok()) return l.status();
  mesh::source::EtcdSource::Change ch;
  ch.full = true;
  for (const auto& kv : l->kvs) ch.events.push_back({false, kv});
  bool changed = false;
  for (const std::string& k :
       mesh::source::EtcdSource::Apply(prefix, ch, comp, &changed)) {
    std::cerr << "note: " << k << " is outside the key layout (ignored)\n";
  }
  if (kvs != nullptr) *kvs = l->kvs;
  return l->revision;
}

// In words, where the part `key` (Composer::Result::Origins::from) is.
std::string OriginText(const std::string& key, const std::string& prefix) {
  absl::string_view k = key;
  const bool held = absl::ConsumeSuffix(&k, " (held)");
  if (absl::ConsumePrefix(&k, "etcd:")) {
    if (absl::StartsWith(k, prefix + "instances/")) {
      return absl::StrCat(held ? "HELD by the mass-removal guard (its key "
                                 "went): registered instance "
                               : "registered instance ",
                          k);
    }
    if (absl::StartsWith(k, prefix + "endpoints/")) {
      return absl::StrCat("endpoint set ", k);
    }
    return absl::StrCat("etcd ", k);
  }
  if (absl::ConsumePrefix(&k, "dns:")) return absl::StrCat("DNS answer ", k);
  return absl::StrCat("declared in ", k);
}

int Explain(int argc, char** argv) {
  std::string config_path, from, service, hostname, method;
  std::map<std::string, std::string> labels, headers;
  std::vector<std::string> etcd_args;
  for (int i = 2; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--config=")) {
      config_path = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--from=")) {
      from = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--service=")) {
      service = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--method=")) {
      method = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--header=")) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(a, absl::MaxSplits('=', 1));
      headers[absl::AsciiStrToLower(kv.first)] = kv.second;
    } else if (absl::ConsumePrefix(&a, "--label=")) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(a, absl::MaxSplits('=', 1));
      if (kv.first.empty()) {
        std::cerr << "meshctl explain: --label needs KEY=VALUE\n";
        return 2;
      }
      labels[kv.first] = kv.second;
    } else if ((a == "--config" || a == "--from" || a == "--service" ||
                a == "--label" || a == "--method" || a == "--header") &&
               i + 1 < argc) {
      // Also accept "--flag value".
      const std::string v = argv[++i];
      if (a == "--config") config_path = v;
      if (a == "--from") from = v;
      if (a == "--service") service = v;
      if (a == "--method") method = v;
      if (a == "--label" || a == "--header") {
        std::pair<std::string, std::string> kv =
            absl::StrSplit(v, absl::MaxSplits('=', 1));
        if (a == "--label") labels[kv.first] = kv.second;
        if (a == "--header") headers[absl::AsciiStrToLower(kv.first)] = kv.second;
      }
    } else if (absl::StartsWith(a, "--etcd") || absl::StartsWith(a, "--prefix")) {
      // etcd's flags (ParseEtcdFlags), "--flag=value" or "--flag value".
      etcd_args.push_back(argv[i]);
      if (!absl::StrContains(a, "=") && i + 1 < argc) {
        etcd_args.push_back(argv[++i]);
      }
    } else if (!a.empty() && a[0] != '-' && hostname.empty()) {
      hostname = std::string(a);
    } else {
      std::cerr << "meshctl explain: unexpected argument " << argv[i] << "\n"
                << kUsage;
      return 2;
    }
  }
  if ((config_path.empty() && etcd_args.empty()) || hostname.empty()) {
    std::cerr << "meshctl explain: HOSTNAME and --config or --etcd are "
                 "required\n"
              << kUsage;
    return 2;
  }
  // The config as an agent with these sources composes it: the file and
  // what etcd holds (endpoint sets, registered instances).
  mesh::source::Composer comp;
  if (!config_path.empty()) {
    absl::StatusOr<std::string> text = mesh::config::ReadFileToString(
        UserPath(config_path), mesh::config::kMaxConfigBytes);
    if (!text.ok()) {
      std::cerr << text.status().message() << "\n";
      return 1;
    }
    comp.SetDocument(config_path, *text);
  }
  std::string prefix;
  if (!etcd_args.empty()) {
    std::vector<char*> eargv = {argv[0], argv[1]};
    for (std::string& x : etcd_args) eargv.push_back(x.data());
    EtcdFlags f;
    if (!ParseEtcdFlags("explain", static_cast<int>(eargv.size()),
                        eargv.data(), &f)) {
      return 2;
    }
    prefix = f.prefix;
    absl::StatusOr<std::unique_ptr<mesh::source::EtcdClient>> client =
        mesh::source::EtcdClient::Create(f.etcd);
    absl::StatusOr<int64_t> rev =
        client.ok() ? LoadEtcd(**client, f.prefix, &comp, nullptr)
                    : absl::StatusOr<int64_t>(client.status());
    if (!rev.ok()) {
      std::cerr << "meshctl explain: " << rev.status().message() << "\n";
      return 1;
    }
  }
  absl::StatusOr<mesh::source::Composer::Result> composed = comp.Compose();
  if (!composed.ok()) {
    std::cerr << composed.status().message() << "\n";
    return 1;
  }
  for (const std::string& l : composed->ignored) {
    std::cout << "note: " << l << "\n";
  }
  const std::shared_ptr<const mesh::config::MeshConfig>* cfg =
      &composed->snapshot->config;
  const mesh::config::Service* s = (*cfg)->FindByAuthority(hostname);
  if (s == nullptr) {
    std::cerr << "meshctl explain: " << hostname << " is not a hostname in "
              << (config_path.empty() ? "etcd's config" : config_path) << "\n";
    return 1;
  }
  // Where each endpoint of the services shown came from.
  std::vector<const mesh::config::Service*> shown = {s};
  auto origins = [&] {
    std::cout << "\nwhere the endpoints come from:\n";
    for (const mesh::config::Service* t : shown) {
      const std::string name = absl::StrCat(t->namespace_name, "/", t->name);
      auto o = composed->origins.find(name);
      for (const mesh::config::Endpoint& e : t->endpoints) {
        const std::string addr = absl::StrCat(e.address, ":", e.port);
        std::string key = config_path;
        if (o != composed->origins.end() && o->second.from.count(addr)) {
          key = o->second.from.at(addr);
        }
        std::cout << "  " << name << " " << addr << " "
                  << e.locality.ToString() << ": " << OriginText(key, prefix)
                  << "\n";
      }
    }
  };
  std::vector<std::string> parts = absl::StrSplit(from, '/');
  parts.resize(3);
  mesh::xds::Caller caller;
  caller.locality = {parts[0], parts[1], parts[2]};
  caller.service = service;
  caller.labels = labels;
  std::cout << hostname << " (service " << s->namespace_name << "/"
            << s->name << ") from " << caller.locality.ToString()
            << (service.empty() ? "" : " as " + service) << "\n";
  if (method.empty()) {
    std::cout << mesh::xds::PlanFor(**cfg, *s, caller).Explain();
    origins();
    return 0;
  }
  // Which route, then each destination's locality plan.
  const mesh::config::CallerInfo who = mesh::xds::CallerInfoOf(**cfg, caller);
  for (const mesh::config::Route& r : s->routes) {
    if (!r.match.source.Matches(who)) {
      std::cout << "not for this caller: route " << r.name << " (line "
                << r.line << "), only for callers with "
                << r.match.source.ToString() << "\n";
    }
  }
  const mesh::policy::RouteChoice choice =
      mesh::policy::MatchRoute(*s, method, headers, who);
  for (const std::string& m : choice.maybe) {
    std::cout << "may first match route " << m << "\n";
  }
  std::vector<mesh::config::Destination> dests;
  if (choice.route == nullptr) {
    std::cout << "route: default (no route matches " << method
              << "): the whole service\n";
    dests.push_back({});
  } else {
    std::cout << "route: " << choice.route->name << " (line "
              << choice.route->line << "), matching "
              << choice.route->match.ToString() << "\n";
    dests = choice.route->destinations;
  }
  for (const mesh::config::Destination& d : dests) {
    const mesh::config::Service* target =
        d.service.empty() ? s : (*cfg)->FindByName(d.service);
    if (target == nullptr) continue;
    if (std::find(shown.begin(), shown.end(), target) == shown.end()) {
      shown.push_back(target);
    }
    std::cout << "\n-> " << mesh::xds::ClusterName(*target, d.subset)
              << (dests.size() > 1 ? absl::StrCat(" (", d.weight, "%)") : "")
              << "\n"
              << mesh::xds::PlanFor(**cfg,
                                    mesh::xds::SubsetOf(*target, d.subset),
                                    caller)
                     .Explain();
  }
  origins();
  return 0;
}

// Whether `text` says it is an endpoint set (kind: EndpointSet).
bool IsEndpointSet(const std::string& text) {
  absl::StatusOr<mesh::config::yaml::Document> doc =
      mesh::config::yaml::Document::Parse(text, "");
  if (!doc.ok()) return false;  // Reported by the validation.
  const mesh::config::yaml::Node root = doc->root();
  return root.IsMap() && root["kind"].IsScalar() &&
         root["kind"].Scalar() == "EndpointSet";
}

int Validate(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "meshctl validate: no files given\n" << kUsage;
    return 2;
  }
  int bad = 0;
  // Under `bazel run`, the working directory is the runfiles tree; resolve
  // relative paths against the directory the user ran bazel from.
  for (int i = 2; i < argc; ++i) {
    const std::string path = UserPath(argv[i]);
    absl::StatusOr<std::string> data =
        mesh::config::ReadFileToString(path, mesh::config::kMaxConfigBytes);
    if (!data.ok()) {
      std::cerr << data.status().message() << "\n";
      ++bad;
      continue;
    }
    if (IsEndpointSet(*data)) {
      absl::StatusOr<mesh::config::EndpointSet> set =
          mesh::config::ParseEndpointSet(*data, path);
      if (!set.ok()) {
        std::cerr << set.status().message() << "\n";
        ++bad;
        continue;
      }
      std::cout << path << ": valid endpoint set (service " << set->service
                << ", " << set->endpoints.size() << " endpoint(s))\n";
      continue;
    }
    auto snap = mesh::config::MakeSnapshot(*data, path);
    if (!snap.ok()) {
      std::cerr << snap.status().message() << "\n";
      ++bad;
      continue;
    }
    const mesh::config::MeshConfig& c = *(*snap)->config;
    size_t endpoints = 0;
    for (const auto& s : c.services) endpoints += s.endpoints.size();
    std::cout << path << ": valid (version " << (*snap)->version
              << ", trust domain " << c.trust_domain << ", "
              << c.services.size() << " service(s), " << endpoints
              << " endpoint(s))\n";
  }
  return bad == 0 ? 0 : 1;
}

bool WriteFile(const std::string& path, const std::string& data,
               mode_t mode) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << data;
    if (!out.flush()) return false;
  }
  return chmod(tmp.c_str(), mode) == 0 && rename(tmp.c_str(), path.c_str()) == 0;
}

int DevCerts(int argc, char** argv) {
  std::string dir, td, ns = "default", hours_s = "24";
  std::vector<std::string> services, server_names;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name, std::string* out) {
      if (a != name) return false;
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string server_name;
    if (value("--dir", &dir) || value("--trust-domain", &td) ||
        value("--namespace", &ns) || value("--valid-hours", &hours_s)) {
      continue;
    }
    if (value("--server-name", &server_name)) {
      server_names.push_back(server_name);
      continue;
    }
    if (absl::StartsWith(a, "--")) {
      std::cerr << "meshctl dev-certs: unknown or incomplete flag " << a
                << "\n" << kUsage;
      return 2;
    }
    services.push_back(a);
  }
  int hours = 0;
  if (dir.empty() || td.empty() || services.empty() ||
      !absl::SimpleAtoi(hours_s, &hours) || hours <= 0) {
    std::cerr << "meshctl dev-certs: --dir, --trust-domain, a positive "
                 "--valid-hours and at least one SERVICE are needed\n"
              << kUsage;
    return 2;
  }
  dir = UserPath(dir);
  auto ca = mesh::identity::DevCa::Create("mesh dev CA (" + td + ")");
  if (!ca.ok()) {
    std::cerr << "meshctl dev-certs: " << ca.status().message() << "\n";
    return 1;
  }
  if (!WriteFile(dir + "/ca.pem", (*ca)->cert_pem(), 0644)) {
    std::cerr << "meshctl dev-certs: cannot write " << dir << "/ca.pem\n";
    return 1;
  }
  for (const std::string& svc : services) {
    mesh::identity::LeafOptions o;
    o.uris = {absl::StrCat("spiffe://", td, "/ns/", ns, "/sa/", svc)};
    o.not_after_offset_s = hours * 3600L;
    absl::StatusOr<mesh::identity::SpiffeId> id =
        mesh::identity::ParseSpiffeId(o.uris[0]);
    if (!id.ok()) {
      std::cerr << "meshctl dev-certs: " << id.status().message() << "\n";
      return 1;
    }
    auto pem = (*ca)->Issue(o);
    if (!pem.ok() ||
        !WriteFile(dir + "/" + svc + ".key", pem->key, 0600) ||
        !WriteFile(dir + "/" + svc + ".pem", pem->cert, 0644)) {
      std::cerr << "meshctl dev-certs: cannot write " << dir << "/" << svc
                << ".{pem,key}\n";
      return 1;
    }
    std::cout << dir << "/" << svc << ".pem: " << o.uris[0] << "\n";
  }
  if (!server_names.empty()) {
    mesh::identity::LeafOptions o;
    o.dns_names = server_names;
    o.not_after_offset_s = hours * 3600L;
    auto pem = (*ca)->Issue(o);
    if (!pem.ok() || !WriteFile(dir + "/server.key", pem->key, 0600) ||
        !WriteFile(dir + "/server.pem", pem->cert, 0644)) {
      std::cerr << "meshctl dev-certs: cannot write " << dir
                << "/server.{pem,key}\n";
      return 1;
    }
    std::cout << dir << "/server.pem: TLS server certificate for "
              << absl::StrJoin(server_names, ", ") << "\n";
  }
  std::cout << dir << "/ca.pem: the trust bundle (throwaway CA, "
            << "development only)\n";
  return 0;
}

int Status(int argc, char** argv) {
  std::string address;
  bool json = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (address.empty() && !absl::StartsWith(a, "--")) {
      address = a;
    } else {
      std::cerr << "meshctl status: unexpected argument " << a << "\n"
                << kUsage;
      return 2;
    }
  }
  if (address.empty()) {
    std::cerr << "meshctl status: ADDRESS is required\n" << kUsage;
    return 2;
  }
  absl::StatusOr<std::string> body =
      mesh::telemetry::HttpGet(address, json ? "/status" : "/status?format=text");
  if (!body.ok()) {
    std::cerr << "meshctl status: " << address << ": "
              << body.status().message()
              << " (is MeshOptions::admin_address set to it?)\n";
    return 1;
  }
  std::cout << *body;
  if (json) std::cout << "\n";
  return 0;
}

// The flags of `put` and `get`: the etcd connection and the prefix.
int Put(int argc, char** argv) {
  EtcdFlags f;
  if (!ParseEtcdFlags("put", argc, argv, &f)) return 2;
  if (f.rest.size() != 1) {
    std::cerr << "meshctl put: give exactly one FILE\n" << kUsage;
    return 2;
  }
  const std::string& path = f.rest[0];
  absl::StatusOr<std::string> text =
      mesh::config::ReadFileToString(path, mesh::config::kMaxConfigBytes);
  if (!text.ok()) {
    std::cerr << "meshctl put: " << text.status().message() << "\n";
    return 1;
  }
  const bool is_set = IsEndpointSet(*text);
  std::string key;
  if (is_set) {
    absl::StatusOr<mesh::config::EndpointSet> set =
        mesh::config::ParseEndpointSet(*text, path);
    if (!set.ok()) {
      std::cerr << set.status().message() << "\n";
      return 1;
    }
    std::string name = f.set;
    if (name.empty()) {
      std::set<std::string> clusters;
      for (const auto& e : set->endpoints) clusters.insert(e.locality.cluster);
      if (clusters.size() != 1 || clusters.begin()->empty()) {
        std::cerr << "meshctl put: " << path
                  << ": its endpoints are not all in one named cluster; give "
                     "the set a name with --set NAME\n";
        return 2;
      }
      name = *clusters.begin();
    }
    key = absl::StrCat(f.prefix, "endpoints/", set->service, "/", name);
  } else {
    absl::StatusOr<std::shared_ptr<const mesh::config::MeshConfig>> cfg =
        mesh::config::ParseConfig(*text, path);
    if (!cfg.ok()) {
      std::cerr << cfg.status().message() << "\n";
      return 1;
    }
    key = f.prefix + "config";
  }
  absl::StatusOr<std::unique_ptr<mesh::source::EtcdClient>> client =
      mesh::source::EtcdClient::Create(f.etcd);
  if (!client.ok()) {
    std::cerr << "meshctl put: " << client.status().message() << "\n";
    return 2;
  }
  // With what etcd holds: the whole must still compose.
  mesh::source::Composer comp;
  absl::StatusOr<int64_t> rev = LoadEtcd(**client, f.prefix, &comp, nullptr);
  if (!rev.ok()) {
    std::cerr << "meshctl put: " << rev.status().message() << "\n";
    return 1;
  }
  const std::string part = mesh::source::EtcdSource::PartKey(key);
  if (is_set) {
    comp.SetEndpointSet(part, *text);
  } else {
    comp.SetDocument(part, *text);
  }
  if (comp.Document() == nullptr && is_set) {
    std::cout << "note: no config document at " << f.prefix
              << "config (the config file holds it?): the set is checked "
                 "alone\n";
  } else {
    absl::StatusOr<mesh::source::Composer::Result> r = comp.Compose();
    if (!r.ok()) {
      std::cerr << "meshctl put: with what etcd holds, " << key
                << " would not compose; nothing written:\n"
                << r.status().message() << "\n";
      return 1;
    }
  }
  absl::StatusOr<int64_t> put = (*client)->Put(key, *text);
  if (!put.ok()) {
    std::cerr << "meshctl put: " << put.status().message() << "\n";
    return 1;
  }
  std::cout << "put " << key << " (" << text->size() << " bytes) at revision "
            << *put << "\n";
  return 0;
}

int Get(int argc, char** argv) {
  EtcdFlags f;
  if (!ParseEtcdFlags("get", argc, argv, &f)) return 2;
  if (!f.rest.empty()) {
    std::cerr << "meshctl get: unexpected argument " << f.rest[0] << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<mesh::source::EtcdClient>> client =
      mesh::source::EtcdClient::Create(f.etcd);
  if (!client.ok()) {
    std::cerr << "meshctl get: " << client.status().message() << "\n";
    return 2;
  }
  mesh::source::Composer comp;
  std::vector<mesh::source::EtcdKv> kvs;
  absl::StatusOr<int64_t> rev = LoadEtcd(**client, f.prefix, &comp, &kvs);
  if (!rev.ok()) {
    std::cerr << "meshctl get: " << rev.status().message() << "\n";
    return 1;
  }
  for (const auto& kv : kvs) {
    std::cout << "--- # " << kv.key << " (revision " << kv.mod_revision
              << ")\n"
              << kv.value << (absl::EndsWith(kv.value, "\n") ? "" : "\n");
  }
  std::cout << "# " << kvs.size() << " keys under " << f.prefix
            << " at revision " << *rev << "\n";
  // Registered instances, with what their leases have left.
  const std::string instances = f.prefix + "instances/";
  int registered = 0;
  for (const auto& kv : kvs) {
    if (!absl::StartsWith(kv.key, instances)) continue;
    if (registered++ == 0) std::cout << "# registered instances:\n";
    absl::StatusOr<mesh::config::EndpointSet> inst =
        mesh::config::ParseInstance(kv.value, kv.key);
    std::string what = "not an instance (clients ignore it)";
    if (inst.ok()) {
      const mesh::config::Endpoint& e = inst->endpoints[0];
      what = absl::StrCat(e.address, ":", e.port, " ", e.locality.ToString(),
                          " ", mesh::config::HealthName(e.health));
    }
    std::string lease = "no lease (stays until deleted)";
    if (kv.lease != 0) {
      absl::StatusOr<mesh::source::EtcdClient::LeaseTtl> ttl =
          (*client)->TimeToLive(kv.lease);
      lease = ttl.ok() ? absl::StrCat("lease ", kv.lease, ", TTL ", ttl->left,
                                      " s left of ", ttl->granted)
                       : absl::StrCat("lease ", kv.lease, ": ",
                                      ttl.status().message());
    }
    std::cout << "#   " << kv.key.substr(instances.size()) << "  " << what
              << "  (" << lease << ")\n";
  }
  if (comp.Document() == nullptr) {
    std::cout << "# no config document here (the config file holds it?)\n";
    return 0;
  }
  absl::StatusOr<mesh::source::Composer::Result> r = comp.Compose();
  if (!r.ok()) {
    std::cout << "# they do not compose:\n# "
              << absl::StrReplaceAll(r.status().message(), {{"\n", "\n# "}})
              << "\n";
    return 1;
  }
  for (const std::string& l : r->ignored) std::cout << "# " << l << "\n";
  std::cout << "# they compose to version " << r->snapshot->version << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" ||
      std::string(argv[1]) == "help") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "validate") return Validate(argc, argv);
  if (cmd == "explain") return Explain(argc, argv);
  if (cmd == "dev-certs") return DevCerts(argc, argv);
  if (cmd == "status") return Status(argc, argv);
  if (cmd == "put") return Put(argc, argv);
  if (cmd == "get") return Get(argc, argv);
  std::cerr << "meshctl: unknown command \"" << cmd << "\"\n" << kUsage;
  return 2;
}
