// Parsing and validation of the mesh/v1 config (see config.h, docs/config.md).
//
// The text is read by mesh/config/yaml.h (libyaml's parser); a syntax error
// comes back in the same "FILE:LINE:COL: message" form as every validation
// problem. Validation never stops at the first problem.

#include "mesh/config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <cstring>
#include <set>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "mesh/identity/svid.h"
#include "mesh/config/yaml.h"
#include "re2/re2.h"

namespace mesh {
namespace config {

std::string Locality::ToString() const {
  return absl::StrCat(region, "/", zone, "/", cluster);
}

bool Locality::operator<(const Locality& o) const {
  return std::tie(region, zone, cluster) <
         std::tie(o.region, o.zone, o.cluster);
}

bool LocalityPattern::Matches(const Locality& l) const {
  return (region == "*" || region == l.region) &&
         (zone == "*" || zone == l.zone) &&
         (cluster == "*" || cluster == l.cluster);
}

std::string LocalityPattern::ToString() const {
  if (cluster != "*") return absl::StrCat(region, "/", zone, "/", cluster);
  if (zone != "*") return absl::StrCat(region, "/", zone, "/*");
  return region == "*" ? "*" : absl::StrCat(region, "/*");
}

const Service* MeshConfig::FindByAuthority(absl::string_view authority) const {
  for (const Service& s : services) {
    if (authority == s.hostname) return &s;
    if (s.port != 0 && authority == absl::StrCat(s.hostname, ":", s.port)) {
      return &s;
    }
  }
  return nullptr;
}

std::string HeaderMatch::ToString() const {
  std::string op;
  switch (kind) {
    case Kind::kExact:
      op = absl::StrCat(" == \"", value, "\"");
      break;
    case Kind::kPrefix:
      op = absl::StrCat(" starts with \"", value, "\"");
      break;
    case Kind::kRegex:
      op = absl::StrCat(" ~ /", value, "/");
      break;
    case Kind::kPresent:
      op = " present";
      break;
    case Kind::kAbsent:
      op = " absent";
      break;
  }
  return absl::StrCat(invert ? "not " : "", name, op);
}

bool SourceMatch::Matches(const CallerInfo& caller) const {
  if (!set) return true;
  if (!service.empty()) {
    // "name" or "namespace/name".
    const size_t slash = service.find('/');
    if (slash == std::string::npos
            ? service != caller.service
            : service != absl::StrCat(caller.namespace_name, "/",
                                      caller.service)) {
      return false;
    }
  }
  if (!namespace_name.empty() && namespace_name != caller.namespace_name) {
    return false;
  }
  for (const auto& [k, v] : labels) {
    auto it = caller.labels.find(k);
    if (it == caller.labels.end() || it->second != v) return false;
  }
  if (has_locality && !locality.Matches(caller.locality)) return false;
  if (!identity.empty()) {
    const bool prefix = absl::EndsWith(identity, "*");
    if (prefix ? !absl::StartsWith(caller.identity,
                                   absl::string_view(identity).substr(
                                       0, identity.size() - 1))
               : identity != caller.identity) {
      return false;
    }
  }
  return true;
}

std::string SourceMatch::ToString() const {
  std::vector<std::string> parts;
  if (!service.empty()) parts.push_back("service " + service);
  if (!namespace_name.empty()) parts.push_back("namespace " + namespace_name);
  for (const auto& [k, v] : labels) {
    parts.push_back(absl::StrCat("label ", k, "=", v));
  }
  if (has_locality) parts.push_back("in " + locality.ToString());
  if (!identity.empty()) parts.push_back("identity " + identity);
  return absl::StrJoin(parts, " and ");
}

bool RouteMatch::MatchesEverything() const {
  return method.empty() && (prefix.empty() || prefix == "/") &&
         headers.empty() && percent == 100 && !source.set;
}

std::string RouteMatch::ToString() const {
  std::vector<std::string> parts;
  if (source.set) parts.push_back("callers with " + source.ToString());
  if (!method.empty()) parts.push_back("method " + method);
  if (!prefix.empty()) parts.push_back("prefix " + prefix);
  for (const HeaderMatch& h : headers) parts.push_back(h.ToString());
  if (percent != 100) parts.push_back(absl::StrCat(percent, "% of calls"));
  return parts.empty() ? "every call" : absl::StrJoin(parts, " and ");
}

const Subset* Service::FindSubset(absl::string_view subset) const {
  for (const Subset& s : subsets) {
    if (s.name == subset) return &s;
  }
  return nullptr;
}

std::string Service::Identity(absl::string_view trust_domain) const {
  if (!identity.empty()) return identity;
  return absl::StrCat("spiffe://", trust_domain, "/ns/", namespace_name,
                      "/sa/", name);
}

const Service* MeshConfig::FindByName(absl::string_view name) const {
  for (const Service& s : services) {
    if (name == s.name || name == absl::StrCat(s.namespace_name, "/", s.name)) {
      return &s;
    }
  }
  return nullptr;
}

namespace {

// A DNS label: lowercase letters, digits and '-', not starting or ending
// with '-', 1-63 characters.
bool IsDnsLabel(absl::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') {
    return false;
  }
  for (char c : s) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) {
      return false;
    }
  }
  return true;
}

bool IsDnsName(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (!IsDnsLabel(label)) return false;
  }
  return true;
}

// SPIFFE trust domain: lowercase letters, digits, '.', '-', '_'.
bool IsTrustDomain(absl::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' ||
          c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

// A locality part or label: letters, digits, '.', '_', '-' (and '/' in label
// keys), 1-128 characters.
bool IsToken(absl::string_view s, bool allow_slash) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-' ||
          (allow_slash && c == '/'))) {
      return false;
    }
  }
  return true;
}

bool IsIpLiteral(const std::string& s) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Collects problems and reads typed values out of YAML nodes.
class Reader {
 public:
  explicit Reader(absl::string_view filename) : filename_(filename) {}

  void Error(const yaml::Mark& mark, absl::string_view path,
             absl::string_view what) {
    const std::string where =
        path.empty() ? std::string() : absl::StrCat(path, ": ");
    if (mark.is_null()) {
      errors_.push_back({0, 0, absl::StrCat(filename_, ": ", where, what)});
    } else {
      errors_.push_back({mark.line + 1, mark.column + 1,
                         absl::StrCat(filename_, ":", mark.line + 1, ":",
                                      mark.column + 1, ": ", where, what)});
    }
  }

  // Checks that `node` is a map, that it has no duplicate keys and no keys
  // outside `allowed`. Returns false if it is not a map.
  bool ExpectMap(const yaml::Node& node, absl::string_view path,
                 const std::vector<absl::string_view>& allowed) {
    if (!node.IsMap()) {
      Error(node.Mark(), path, absl::StrCat("must be a map, got ", Kind(node)));
      return false;
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        Error(kv.first.Mark(), path, "keys must be plain strings");
        continue;
      }
      const std::string key = kv.first.Scalar();
      const std::string field = Join(path, key);
      if (!seen.insert(key).second) {
        Error(kv.first.Mark(), field, "duplicate key");
        continue;
      }
      bool known = false;
      for (absl::string_view a : allowed) known = known || a == key;
      if (!known) {
        Error(kv.first.Mark(), field,
              absl::StrCat("unknown field (expected one of: ",
                           absl::StrJoin(allowed, ", "), ")"));
      }
    }
    return true;
  }

  // Reads a scalar string. Returns false if absent (reporting it when
  // `required`) or not a scalar.
  bool String(const yaml::Node& map, absl::string_view key,
              absl::string_view path, bool required, std::string* out) {
    const yaml::Node v = map[key];
    const std::string field = Join(path, key);
    if (!v.IsDefined() || v.IsNull()) {
      if (required) Error(map.Mark(), field, "required field is missing");
      return false;
    }
    if (!v.IsScalar()) {
      Error(v.Mark(), field, absl::StrCat("must be a string, got ", Kind(v)));
      return false;
    }
    if (required && v.Scalar().empty()) {
      // An empty string is not a value: `region: ""` would silently make
      // an endpoint "unknown locality".
      Error(v.Mark(), field, "required field is empty");
      return false;
    }
    *out = v.Scalar();
    return true;
  }

  bool Uint(const yaml::Node& map, absl::string_view key,
            absl::string_view path, bool required, uint32_t min, uint32_t max,
            uint32_t* out) {
    const yaml::Node v = map[key];
    const std::string field = Join(path, key);
    if (!v.IsDefined() || v.IsNull()) {
      if (required) Error(map.Mark(), field, "required field is missing");
      return false;
    }
    int64_t n = 0;
    const bool integer = v.IsScalar() && IsIntegerText(v.Scalar());
    if (!integer) {
      Error(v.Mark(), field,
            absl::StrCat("must be an integer, got ",
                         v.IsScalar() ? Quote(v.Scalar()) : Kind(v)));
      return false;
    }
    if (!absl::SimpleAtoi(v.Scalar(), &n) || n < static_cast<int64_t>(min) ||
        n > static_cast<int64_t>(max)) {
      Error(v.Mark(), field,
            absl::StrCat("must be between ", min, " and ", max, ", got ",
                         v.Scalar()));
      return false;
    }
    *out = static_cast<uint32_t>(n);
    return true;
  }

  static std::string Join(absl::string_view path, absl::string_view key) {
    return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
  }

  static std::string Quote(absl::string_view s) {
    return absl::StrCat("\"", s.substr(0, 64), s.size() > 64 ? "..." : "",
                        "\"");
  }

  // An optional '-' and digits (however many).
  static bool IsIntegerText(absl::string_view s) {
    absl::ConsumePrefix(&s, "-");
    if (s.empty()) return false;
    for (char c : s) {
      if (!absl::ascii_isdigit(c)) return false;
    }
    return true;
  }

  static std::string Kind(const yaml::Node& n) {
    switch (n.Type()) {
      case yaml::NodeType::kMap:
        return n.size() == 0 ? "an empty map" : "a map";
      case yaml::NodeType::kSequence:
        return n.size() == 0 ? "an empty list" : "a list";
      case yaml::NodeType::kScalar:
        return Quote(n.Scalar());
      default:
        return "nothing";
    }
  }

  bool has_errors() const { return !errors_.empty(); }

  // Every problem, in file order, one per line.
  std::string Report() {
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const Problem& a, const Problem& b) {
                       return std::tie(a.line, a.column) <
                              std::tie(b.line, b.column);
                     });
    std::vector<std::string> lines;
    for (const Problem& p : errors_) lines.push_back(p.text);
    return absl::StrJoin(lines, "\n");
  }

 private:
  struct Problem {
    int line;
    int column;
    std::string text;
  };
  std::string filename_;
  std::vector<Problem> errors_;
};

// Messages quote user input: keep them printable ASCII whatever the input
// (invalid UTF-8, control characters) so that logs and terminals stay sane.
std::string Printable(absl::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n' || (c >= 0x20 && c < 0x7f)) {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

constexpr absl::string_view kApiVersion = "mesh/v1";

void ReadLocality(Reader& r, const yaml::Node& parent, const std::string& path,
                  Locality* out) {
  const yaml::Node node = parent["locality"];
  if (!node.IsDefined() || node.IsNull()) {
    // An absent node has no position: report at its parent.
    r.Error(parent.Mark(), path, "required field is missing");
    return;
  }
  if (!r.ExpectMap(node, path, {"region", "zone", "cluster"})) return;
  r.String(node, "region", path, /*required=*/true, &out->region);
  r.String(node, "zone", path, false, &out->zone);
  r.String(node, "cluster", path, false, &out->cluster);
  const std::pair<const char*, std::string*> parts[] = {
      {"region", &out->region}, {"zone", &out->zone},
      {"cluster", &out->cluster}};
  for (const auto& [key, value] : parts) {
    if (!value->empty() && !IsToken(*value, false)) {
      r.Error(node[key].Mark(), Reader::Join(path, key),
              absl::StrCat("must be 1-128 letters, digits, '.', '_' or '-', "
                           "got ",
                           Reader::Quote(*value)));
    }
  }
  if (!out->cluster.empty() && out->zone.empty()) {
    r.Error(node.Mark(), Reader::Join(path, "cluster"),
            "a cluster needs a zone (localities nest region > zone > "
            "cluster)");
  }
}

void ReadLabels(Reader& r, const yaml::Node& node, const std::string& path,
                std::map<std::string, std::string>* out) {
  const yaml::Node labels = node["labels"];
  const std::string lpath = Reader::Join(path, "labels");
  if (!labels.IsDefined() || labels.IsNull()) return;
  if (!labels.IsMap()) {
    r.Error(labels.Mark(), lpath,
            absl::StrCat("must be a map, got ", Reader::Kind(labels)));
    return;
  }
  for (const auto& kv : labels) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
    const std::string field = Reader::Join(lpath, key);
    if (kv.first.IsScalar() && key.empty()) {
      r.Error(kv.first.Mark(), lpath, "label key is empty");
    } else if (!IsToken(key, true)) {
      r.Error(kv.first.Mark(), field,
              "label keys must be 1-128 letters, digits, '.', '_', '-' or "
              "'/'");
    } else if (!kv.second.IsScalar()) {
      r.Error(kv.second.Mark(), field, "label values must be strings");
    } else if (!out->emplace(key, kv.second.Scalar()).second) {
      r.Error(kv.first.Mark(), field, "duplicate key");
    }
  }
}

void ReadEndpoint(Reader& r, const yaml::Node& node, const std::string& path,
                  Endpoint* ep) {
  if (!r.ExpectMap(node, path, {"address", "port", "locality", "weight",
                                "health", "labels"})) {
    return;
  }
  if (r.String(node, "address", path, true, &ep->address) &&
      !IsIpLiteral(ep->address)) {
    r.Error(node["address"].Mark(), Reader::Join(path, "address"),
            absl::StrCat("must be an IPv4 or IPv6 address, got ",
                         Reader::Quote(ep->address)));
  }
  r.Uint(node, "port", path, true, 1, 65535, &ep->port);
  ReadLocality(r, node, Reader::Join(path, "locality"), &ep->locality);
  r.Uint(node, "weight", path, false, 1, 10000, &ep->weight);
  std::string health;
  if (r.String(node, "health", path, false, &health)) {
    const std::string h = absl::AsciiStrToUpper(health);
    if (h == "HEALTHY") {
      ep->health = Health::kHealthy;
    } else if (h == "UNHEALTHY") {
      ep->health = Health::kUnhealthy;
    } else if (h == "DRAINING") {
      ep->health = Health::kDraining;
    } else {
      r.Error(node["health"].Mark(), Reader::Join(path, "health"),
              absl::StrCat("must be HEALTHY, UNHEALTHY or DRAINING, got ",
                           Reader::Quote(health)));
    }
  }
  ReadLabels(r, node, path, &ep->labels);
}

// A service's `endpoints` (or an endpoint set's): no address:port twice.
void ReadEndpointList(Reader& r, const yaml::Node& eps,
                      const std::string& epath, std::vector<Endpoint>* out) {
  if (!eps.IsSequence()) {
    r.Error(eps.Mark(), epath,
            absl::StrCat("must be a list, got ", Reader::Kind(eps)));
    return;
  }
  std::map<std::string, int> seen;  // "addr:port" -> index
  for (size_t i = 0; i < eps.size(); ++i) {
    const std::string p = absl::StrCat(epath, "[", i, "]");
    Endpoint ep;
    ReadEndpoint(r, eps[i], p, &ep);
    const std::string key = absl::StrCat(ep.address, ":", ep.port);
    if (!ep.address.empty() && ep.port != 0) {
      auto [it, inserted] = seen.emplace(key, static_cast<int>(i));
      if (!inserted) {
        r.Error(eps[i].Mark(), p,
                absl::StrCat("duplicate endpoint ", key, " (also ", epath,
                             "[", it->second, "])"));
      }
    }
    out->push_back(std::move(ep));
  }
}

// A DNS name as queried: labels of letters, digits, '-' and '_' (SRV names
// start with "_service._proto").
bool IsQueryName(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (label.empty() || label.size() > 63) return false;
    for (char c : label) {
      if (!(absl::ascii_isalnum(c) || c == '-' || c == '_')) return false;
    }
  }
  return true;
}

void ReadDns(Reader& r, const yaml::Node& list, const std::string& path,
             std::vector<DnsEndpoints>* out) {
  if (!list.IsSequence()) {
    r.Error(list.Mark(), path,
            absl::StrCat("must be a list, got ", Reader::Kind(list)));
    return;
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = absl::StrCat(path, "[", i, "]");
    const yaml::Node n = list[i];
    if (!r.ExpectMap(n, p, {"name", "srv", "port", "locality", "weight",
                            "labels"})) {
      continue;
    }
    DnsEndpoints d;
    d.line = n.Mark().line + 1;
    std::string srv;
    const bool has_name = r.String(n, "name", p, false, &d.name);
    const bool has_srv = r.String(n, "srv", p, false, &srv);
    if (has_srv && !has_name) {
      d.srv = true;
      d.name = srv;
    }
    if (has_name == has_srv) {
      r.Error(n.Mark(), p,
              has_name ? "give either `name` (A/AAAA records) or `srv` "
                         "(SRV records), not both"
                       : "needs `name` (A/AAAA records, with `port`) or "
                         "`srv` (SRV records)");
      continue;
    }
    const std::string field = Reader::Join(p, d.srv ? "srv" : "name");
    if (!IsQueryName(d.name)) {
      r.Error(n[d.srv ? "srv" : "name"].Mark(), field,
              absl::StrCat("must be a DNS name, got ", Reader::Quote(d.name)));
    }
    if (d.srv) {
      if (n["port"].IsDefined() || n["weight"].IsDefined()) {
        r.Error(n.Mark(), p,
                "`port` and `weight` come from the SRV records; remove them");
      }
    } else {
      r.Uint(n, "port", p, true, 1, 65535, &d.port);
      r.Uint(n, "weight", p, false, 1, 10000, &d.weight);
    }
    ReadLocality(r, n, Reader::Join(p, "locality"), &d.locality);
    ReadLabels(r, n, p, &d.labels);
    if (!seen.insert(d.Key()).second) {
      r.Error(n.Mark(), p, absl::StrCat("duplicate DNS entry ", d.Key()));
    }
    out->push_back(std::move(d));
  }
}

// "region[/zone[/cluster]]" with "*" wildcards.
bool ParsePattern(absl::string_view text, LocalityPattern* out) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  if (parts.empty() || parts.size() > 3) return false;
  for (const std::string& p : parts) {
    if (p != "*" && !IsToken(p, false)) return false;
  }
  out->region = parts[0];
  out->zone = parts.size() > 1 ? parts[1] : "*";
  out->cluster = parts.size() > 2 ? parts[2] : "*";
  // A wildcard may only be followed by wildcards ("*/zone" means nothing).
  if ((out->region == "*" && (out->zone != "*" || out->cluster != "*")) ||
      (out->zone == "*" && out->cluster != "*")) {
    return false;
  }
  return true;
}

constexpr absl::string_view kPatternHelp =
    "must be a locality pattern \"region[/zone[/cluster]]\" where a part may "
    "be \"*\" (then so must the parts after it)";

bool ReadPattern(Reader& r, const yaml::Node& node, const std::string& path,
                 LocalityPattern* out) {
  if (!node.IsScalar() || !ParsePattern(node.Scalar(), out)) {
    r.Error(node.Mark(), path,
            absl::StrCat(kPatternHelp, ", got ", Reader::Kind(node)));
    return false;
  }
  return true;
}

// "5s", "250ms", "1m". Returns milliseconds.
bool Duration(Reader& r, const yaml::Node& map, absl::string_view key,
              absl::string_view path, int64_t min_ms, int64_t max_ms,
              int64_t* out) {
  const yaml::Node v = map[key];
  if (!v.IsDefined() || v.IsNull()) return false;
  absl::Duration d;
  const std::string field = Reader::Join(path, key);
  if (!v.IsScalar() || !absl::ParseDuration(v.Scalar(), &d)) {
    r.Error(v.Mark(), field,
            absl::StrCat("must be a duration such as \"5s\" or \"250ms\", "
                         "got ",
                         Reader::Kind(v)));
    return false;
  }
  const int64_t ms = absl::ToInt64Milliseconds(d);
  if (ms < min_ms || ms > max_ms) {
    r.Error(v.Mark(), field,
            absl::StrCat("must be between ",
                         absl::FormatDuration(absl::Milliseconds(min_ms)),
                         " and ",
                         absl::FormatDuration(absl::Milliseconds(max_ms)),
                         ", got ", v.Scalar()));
    return false;
  }
  *out = ms;
  return true;
}

// Reads a non-empty list of {from, to} rules with distinct `from` patterns.
// `read_to` checks the rule's `from` further and reads its `to`; it returns
// whether both are valid. Invalid rules are reported and left out.
template <typename Rule>
void ReadFromToRules(
    Reader& r, const yaml::Node& list, const std::string& path,
    std::vector<Rule>* out,
    const std::function<bool(const yaml::Node&, const std::string&, Rule*)>&
        read_to) {
  if (!list.IsSequence() || list.size() == 0) {
    r.Error(list.Mark(), path,
            absl::StrCat("must be a non-empty list of {from, to} rules, got ",
                         Reader::Kind(list)));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = absl::StrCat(path, "[", i, "]");
    const yaml::Node n = list[i];
    if (!r.ExpectMap(n, p, {"from", "to"})) continue;
    Rule rule;
    rule.line = n.Mark().line + 1;
    bool ok = true;
    if (!n["from"].IsDefined()) {
      r.Error(n.Mark(), p + ".from", "required field is missing");
      ok = false;
    } else {
      ok = ReadPattern(r, n["from"], p + ".from", &rule.from);
    }
    ok = read_to(n, p, &rule) && ok;
    for (const Rule& other : *out) {
      if (ok && other.from.ToString() == rule.from.ToString()) {
        r.Error(n["from"].Mark(), p + ".from",
                absl::StrCat("duplicate rule for ", rule.from.ToString(),
                             " (also on line ", other.line, ")"));
        ok = false;
      }
    }
    if (ok) out->push_back(std::move(rule));
  }
}

void ReadFailover(Reader& r, const yaml::Node& list, const std::string& path,
                  std::vector<FailoverRule>* out) {
  ReadFromToRules<FailoverRule>(
      r, list, path, out,
      [&r](const yaml::Node& n, const std::string& p, FailoverRule* rule) {
        bool ok = true;
        if (n["from"].IsDefined() &&
            (rule->from.region == "*" || rule->from.cluster != "*")) {
          r.Error(n["from"].Mark(), p + ".from",
                  "must name a region or a region/zone");
          ok = false;
        }
        const yaml::Node to = n["to"];
        if (!to.IsDefined() || !to.IsSequence() || to.size() == 0) {
          r.Error(to.IsDefined() ? to.Mark() : n.Mark(), p + ".to",
                  "must be a non-empty list of locality patterns");
          return false;
        }
        for (size_t j = 0; j < to.size(); ++j) {
          LocalityPattern t;
          if (ReadPattern(r, to[j], absl::StrCat(p, ".to[", j, "]"), &t)) {
            rule->to.push_back(t);
          } else {
            ok = false;
          }
        }
        return ok;
      });
}

void ReadDistribute(Reader& r, const yaml::Node& list, const std::string& path,
                    std::vector<DistributeRule>* out) {
  ReadFromToRules<DistributeRule>(
      r, list, path, out,
      [&r](const yaml::Node& n, const std::string& p, DistributeRule* rule) {
        const yaml::Node to = n["to"];
        if (!to.IsDefined() || !to.IsMap() || to.size() == 0) {
          r.Error(to.IsDefined() ? to.Mark() : n.Mark(), p + ".to",
                  "must be a non-empty map of locality pattern to weight");
          return false;
        }
        uint64_t sum = 0;
        bool ok = true;
        std::set<std::string> seen;
        for (const auto& kv : to) {
          LocalityPattern t;
          const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
          const std::string field = absl::StrCat(p, ".to.", key);
          if (!ReadPattern(r, kv.first, field, &t)) {
            ok = false;
            continue;
          }
          if (!seen.insert(t.ToString()).second) {
            r.Error(kv.first.Mark(), field, "duplicate key");
            ok = false;
            continue;
          }
          uint64_t w = 0;
          if (!kv.second.IsScalar() ||
              !absl::SimpleAtoi(kv.second.Scalar(), &w) || w < 1 || w > 100) {
            r.Error(kv.second.Mark(), field,
                    absl::StrCat("must be a weight between 1 and 100, got ",
                                 Reader::Kind(kv.second)));
            ok = false;
            continue;
          }
          sum += w;
          rule->to.push_back({t, static_cast<uint32_t>(w)});
        }
        if (ok && sum != 100) {
          r.Error(to.Mark(), p + ".to",
                  absl::StrCat("weights must sum to 100, got ", sum));
          ok = false;
        }
        return ok;
      });
}

void ReadLocalityPolicy(Reader& r, const yaml::Node& node,
                        const std::string& path, LocalityPolicy* lp) {
  if (!r.ExpectMap(node, path, {"failoverPriority", "failover", "distribute",
                                "zoneAware", "spillover"})) {
    return;
  }
  int rules = 0;
  std::vector<std::string> given;
  for (const char* k : {"failoverPriority", "failover", "distribute",
                        "zoneAware"}) {
    if (node[k].IsDefined() && !node[k].IsNull()) {
      ++rules;
      given.push_back(k);
    }
  }
  if (rules > 1) {
    r.Error(node.Mark(), path,
            absl::StrCat("set at most one of failoverPriority, failover, "
                         "distribute and zoneAware; got ",
                         absl::StrJoin(given, " and ")));
  }
  const yaml::Node fp = node["failoverPriority"];
  if (fp.IsDefined() && !fp.IsNull()) {
    const std::string p = path + ".failoverPriority";
    if (!fp.IsSequence() || fp.size() == 0) {
      r.Error(fp.Mark(), p,
              absl::StrCat("must be a non-empty list of label keys, got ",
                           Reader::Kind(fp)));
    } else {
      std::set<std::string> seen;
      for (size_t i = 0; i < fp.size(); ++i) {
        const std::string k = fp[i].IsScalar() ? fp[i].Scalar() : "";
        if (!IsToken(k, true)) {
          r.Error(fp[i].Mark(), absl::StrCat(p, "[", i, "]"),
                  "must be a label key (or region, zone, cluster)");
        } else if (!seen.insert(k).second) {
          r.Error(fp[i].Mark(), absl::StrCat(p, "[", i, "]"),
                  absl::StrCat("duplicate label key ", k));
        } else {
          lp->failover_priority.push_back(k);
        }
      }
    }
  }
  if (node["failover"].IsDefined() && !node["failover"].IsNull()) {
    ReadFailover(r, node["failover"], path + ".failover", &lp->failover);
  }
  if (node["distribute"].IsDefined() && !node["distribute"].IsNull()) {
    ReadDistribute(r, node["distribute"], path + ".distribute",
                   &lp->distribute);
  }
  const yaml::Node za = node["zoneAware"];
  if (za.IsDefined() && !za.IsNull()) {
    const std::string p = path + ".zoneAware";
    if (r.ExpectMap(za, p, {"minEndpoints"})) {
      lp->zone_aware = true;
      r.Uint(za, "minEndpoints", p, false, 1, 1000000,
             &lp->zone_aware_min_endpoints);
    }
  }
  const yaml::Node sp = node["spillover"];
  if (sp.IsDefined() && !sp.IsNull()) {
    const std::string p = path + ".spillover";
    if (r.ExpectMap(sp, p,
                    {"mode", "overprovisioningFactor", "panicThreshold"})) {
      std::string mode;
      if (r.String(sp, "mode", p, false, &mode)) {
        if (mode == "proportional") {
          lp->spillover = SpilloverMode::kProportional;
        } else if (mode == "failover") {
          lp->spillover = SpilloverMode::kFailover;
        } else {
          r.Error(sp["mode"].Mark(), p + ".mode",
                  absl::StrCat("must be proportional or failover, got ",
                               Reader::Quote(mode)));
        }
      }
      const yaml::Node of = sp["overprovisioningFactor"];
      if (of.IsDefined() && !of.IsNull()) {
        double f = 0;
        if (!of.IsScalar() || !absl::SimpleAtod(of.Scalar(), &f) || f < 1.0 ||
            f > 10.0) {
          r.Error(of.Mark(), p + ".overprovisioningFactor",
                  absl::StrCat("must be a number between 1.0 and 10.0, got ",
                               Reader::Kind(of)));
        } else {
          lp->overprovisioning_percent =
              static_cast<uint32_t>(f * 100 + 0.5);
        }
      }
      r.Uint(sp, "panicThreshold", p, false, 0, 100,
             &lp->panic_threshold_percent);
    }
  }
}

void ReadHealthCheck(Reader& r, const yaml::Node& node,
                     const std::string& path, HealthCheck* hc) {
  if (!r.ExpectMap(node, path, {"interval", "timeout", "healthyThreshold",
                                "unhealthyThreshold", "serviceName"})) {
    return;
  }
  hc->enabled = true;
  Duration(r, node, "interval", path, 100, 3600000, &hc->interval_ms);
  Duration(r, node, "timeout", path, 10, 60000, &hc->timeout_ms);
  if (hc->timeout_ms > hc->interval_ms) {
    r.Error(node.Mark(), path + ".timeout",
            absl::StrCat("must not exceed the interval (", hc->interval_ms,
                         "ms), got ", hc->timeout_ms, "ms"));
  }
  r.Uint(node, "healthyThreshold", path, false, 1, 100,
         &hc->healthy_threshold);
  r.Uint(node, "unhealthyThreshold", path, false, 1, 100,
         &hc->unhealthy_threshold);
  r.String(node, "serviceName", path, false, &hc->service_name);
}

void ReadOutlierDetection(Reader& r, const yaml::Node& node,
                          const std::string& path, OutlierDetection* od) {
  if (!r.ExpectMap(node, path, {"interval", "baseEjectionTime",
                                "maxEjectionTime", "maxEjectionPercent",
                                "failurePercentage", "successRate"})) {
    return;
  }
  Duration(r, node, "interval", path, 100, 3600000, &od->interval_ms);
  Duration(r, node, "baseEjectionTime", path, 100, 3600000,
           &od->base_ejection_ms);
  Duration(r, node, "maxEjectionTime", path, 100, 86400000,
           &od->max_ejection_ms);
  if (od->max_ejection_ms < od->base_ejection_ms) {
    const bool max_given = node["maxEjectionTime"].IsDefined();
    r.Error(node[max_given ? "maxEjectionTime" : "baseEjectionTime"].Mark(),
            path + ".maxEjectionTime",
            absl::StrCat("must not be less than baseEjectionTime (",
                         od->base_ejection_ms, "ms), got ",
                         od->max_ejection_ms, "ms"));
  }
  r.Uint(node, "maxEjectionPercent", path, false, 0, 100,
         &od->max_ejection_percent);
  const yaml::Node fp = node["failurePercentage"];
  const std::string fpp = path + ".failurePercentage";
  if (fp.IsDefined() && !fp.IsNull() &&
      r.ExpectMap(fp, fpp, {"threshold", "minimumHosts", "requestVolume",
                            "enforcementPercent"})) {
    r.Uint(fp, "threshold", fpp, false, 0, 100, &od->failure_threshold);
    r.Uint(fp, "minimumHosts", fpp, false, 1, 100000,
           &od->failure_minimum_hosts);
    r.Uint(fp, "requestVolume", fpp, false, 1, 1000000,
           &od->failure_request_volume);
    r.Uint(fp, "enforcementPercent", fpp, false, 0, 100,
           &od->failure_enforcement_percent);
  }
  const yaml::Node sr = node["successRate"];
  const std::string srp = path + ".successRate";
  if (sr.IsDefined() && !sr.IsNull() &&
      r.ExpectMap(sr, srp, {"stdevFactor", "minimumHosts", "requestVolume",
                            "enforcementPercent"})) {
    od->success_enforcement_percent = 100;
    const yaml::Node f = sr["stdevFactor"];
    if (f.IsDefined() && !f.IsNull()) {
      double v = 0;
      if (!f.IsScalar() || !absl::SimpleAtod(f.Scalar(), &v) || v < 0.1 ||
          v > 100.0) {
        r.Error(f.Mark(), srp + ".stdevFactor",
                absl::StrCat("must be a number between 0.1 and 100, got ",
                             f.IsScalar() ? Reader::Quote(f.Scalar())
                                          : Reader::Kind(f)));
      } else {
        od->success_stdev_factor_milli = static_cast<uint32_t>(v * 1000 + 0.5);
      }
    }
    r.Uint(sr, "minimumHosts", srp, false, 1, 100000,
           &od->success_minimum_hosts);
    r.Uint(sr, "requestVolume", srp, false, 1, 1000000,
           &od->success_request_volume);
    r.Uint(sr, "enforcementPercent", srp, false, 0, 100,
           &od->success_enforcement_percent);
  }
}

void ReadCircuitBreaker(Reader& r, const yaml::Node& node,
                        const std::string& path, CircuitBreaker* cb) {
  if (!r.ExpectMap(node, path, {"maxRequests"})) return;
  r.Uint(node, "maxRequests", path, true, 1, 1000000, &cb->max_requests);
}

void ReadRegistration(Reader& r, const yaml::Node& node,
                      const std::string& path, RemovalGuard* g) {
  if (!r.ExpectMap(node, path, {"removalGuard"})) return;
  const yaml::Node n = node["removalGuard"];
  if (!n.IsDefined() || n.IsNull()) return;
  const std::string p = path + ".removalGuard";
  if (!r.ExpectMap(n, p, {"maxVanishPercent", "window", "minInstances",
                          "maxHold"})) {
    return;
  }
  r.Uint(n, "maxVanishPercent", p, false, 1, 100, &g->max_vanish_percent);
  Duration(r, n, "window", p, 1000, 3600000, &g->window_ms);
  r.Uint(n, "minInstances", p, false, 1, 100000, &g->min_instances);
  Duration(r, n, "maxHold", p, 1000, 86400000, &g->max_hold_ms);
}

// Checks made once every service is read: destinations name a service
// (and subset) that exists.
struct PendingDestination {
  yaml::Mark mark;
  std::string path;
  std::string from_service;  // The service whose route it is.
  Destination destination;
};

constexpr std::pair<absl::string_view, int> kGrpcCodes[] = {
    {"OK", 0},
    {"CANCELLED", 1},
    {"UNKNOWN", 2},
    {"INVALID_ARGUMENT", 3},
    {"DEADLINE_EXCEEDED", 4},
    {"NOT_FOUND", 5},
    {"ALREADY_EXISTS", 6},
    {"PERMISSION_DENIED", 7},
    {"RESOURCE_EXHAUSTED", 8},
    {"FAILED_PRECONDITION", 9},
    {"ABORTED", 10},
    {"OUT_OF_RANGE", 11},
    {"UNIMPLEMENTED", 12},
    {"INTERNAL", 13},
    {"UNAVAILABLE", 14},
    {"DATA_LOSS", 15},
    {"UNAUTHENTICATED", 16},
};

// The retry conditions gRPC 1.51 implements (others it ignores).
constexpr absl::string_view kRetryOn[] = {"cancelled", "deadline-exceeded",
                                          "internal", "resource-exhausted",
                                          "unavailable"};

bool IsMethodPath(absl::string_view p) {
  // "/pkg.Service/Method": two non-empty segments.
  if (p.size() < 4 || p[0] != '/') return false;
  const size_t slash = p.find('/', 1);
  if (slash == absl::string_view::npos || slash == 1 || slash + 1 == p.size())
    return false;
  return p.find('/', slash + 1) == absl::string_view::npos;
}

void ReadSubsets(Reader& r, const yaml::Node& list, const std::string& path,
                 std::vector<Subset>* out) {
  if (!list.IsSequence()) {
    r.Error(list.Mark(), path,
            absl::StrCat("must be a list of {name, labels}, got ",
                         Reader::Kind(list)));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = absl::StrCat(path, "[", i, "]");
    const yaml::Node n = list[i];
    if (!r.ExpectMap(n, p, {"name", "labels", "circuitBreaker"})) continue;
    Subset sub;
    const yaml::Node cb = n["circuitBreaker"];
    if (cb.IsDefined() && !cb.IsNull() &&
        r.ExpectMap(cb, p + ".circuitBreaker", {"maxRequests"})) {
      r.Uint(cb, "maxRequests", p + ".circuitBreaker", true, 1, 1000000,
             &sub.max_requests);
    }
    if (r.String(n, "name", p, true, &sub.name) && !IsDnsLabel(sub.name)) {
      r.Error(n["name"].Mark(), p + ".name",
              absl::StrCat("must be a DNS label, got ",
                           Reader::Quote(sub.name)));
    }
    const yaml::Node labels = n["labels"];
    if (!labels.IsDefined() || !labels.IsMap() || labels.size() == 0) {
      r.Error(labels.IsDefined() ? labels.Mark() : n.Mark(), p + ".labels",
              "must be a non-empty map of label to value");
    } else {
      for (const auto& kv : labels) {
        if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
          r.Error(kv.first.Mark(), p + ".labels", "labels must be strings");
          continue;
        }
        sub.labels[kv.first.Scalar()] = kv.second.Scalar();
      }
    }
    for (const Subset& other : *out) {
      if (!sub.name.empty() && other.name == sub.name) {
        r.Error(n["name"].Mark(), p + ".name",
                absl::StrCat("duplicate subset ", sub.name));
      }
    }
    out->push_back(std::move(sub));
  }
}

void ReadHeaderMatch(Reader& r, const yaml::Node& n, const std::string& p,
                     HeaderMatch* h) {
  if (!r.ExpectMap(n, p, {"name", "exact", "prefix", "regex", "present",
                          "absent", "invert"})) {
    return;
  }
  if (r.String(n, "name", p, true, &h->name)) {
    if (h->name != absl::AsciiStrToLower(h->name) || h->name.empty() ||
        h->name[0] == ':') {
      r.Error(n["name"].Mark(), p + ".name",
              "must be a lowercase header name (no pseudo-headers)");
    } else if (absl::EndsWith(h->name, "-bin")) {
      r.Error(n["name"].Mark(), p + ".name",
              "binary (-bin) headers cannot be matched: gRPC 1.51 ignores "
              "them in routing");
    } else if (absl::StartsWith(h->name, "grpc-")) {
      r.Error(n["name"].Mark(), p + ".name",
              "grpc- headers cannot be matched: gRPC 1.51 hides them from "
              "routing");
    }
  }
  int kinds = 0;
  std::string v;
  if (r.String(n, "exact", p, false, &v)) {
    h->kind = HeaderMatch::Kind::kExact;
    h->value = v;
    ++kinds;
  }
  if (r.String(n, "prefix", p, false, &v)) {
    h->kind = HeaderMatch::Kind::kPrefix;
    h->value = v;
    ++kinds;
    if (v.empty()) {
      r.Error(n["prefix"].Mark(), p + ".prefix", "must not be empty");
    }
  }
  if (r.String(n, "regex", p, false, &v)) {
    h->kind = HeaderMatch::Kind::kRegex;
    h->value = v;
    ++kinds;
    RE2 re(v, RE2::Quiet);
    if (!re.ok()) {
      r.Error(n["regex"].Mark(), p + ".regex",
              absl::StrCat("invalid RE2 regular expression: ", re.error()));
    }
  }
  for (const char* k : {"present", "absent"}) {
    const yaml::Node b = n[k];
    if (!b.IsDefined()) continue;
    ++kinds;
    if (!b.IsScalar() || b.Scalar() != "true") {
      r.Error(b.Mark(), absl::StrCat(p, ".", k),
              "must be true (use invert to negate a match)");
    }
    h->kind = std::string(k) == "present" ? HeaderMatch::Kind::kPresent
                                          : HeaderMatch::Kind::kAbsent;
  }
  if (kinds != 1) {
    r.Error(n.Mark(), p,
            "set exactly one of exact, prefix, regex, present, absent");
  }
  const yaml::Node inv = n["invert"];
  if (inv.IsDefined()) {
    if (!inv.IsScalar() || (inv.Scalar() != "true" && inv.Scalar() != "false")) {
      r.Error(inv.Mark(), p + ".invert", "must be true or false");
    } else {
      h->invert = inv.Scalar() == "true";
    }
  }
}

std::string CallerPatternError(absl::string_view p);

// A route's `match.source`: which callers it applies to.
void ReadSourceMatch(Reader& r, const yaml::Node& n, const std::string& p,
                     SourceMatch* m) {
  if (!r.ExpectMap(n, p, {"service", "namespace", "labels", "locality",
                          "identity"})) {
    return;
  }
  m->set = true;
  if (r.String(n, "service", p, false, &m->service)) {
    const std::vector<std::string> parts = absl::StrSplit(m->service, '/');
    bool ok = parts.size() <= 2;
    for (const std::string& part : parts) ok = ok && IsDnsLabel(part);
    if (!ok) {
      r.Error(n["service"].Mark(), p + ".service",
              absl::StrCat("must be a service name or \"namespace/name\" "
                           "(DNS labels), got ",
                           Reader::Quote(m->service)));
    }
  }
  if (r.String(n, "namespace", p, false, &m->namespace_name) &&
      !IsDnsLabel(m->namespace_name)) {
    r.Error(n["namespace"].Mark(), p + ".namespace",
            absl::StrCat("must be a DNS label, got ",
                         Reader::Quote(m->namespace_name)));
  }
  ReadLabels(r, n, p, &m->labels);
  if (n["locality"].IsDefined() && !n["locality"].IsNull()) {
    m->has_locality =
        ReadPattern(r, n["locality"], p + ".locality", &m->locality);
  }
  if (r.String(n, "identity", p, false, &m->identity)) {
    const std::string why = m->identity == "*"
                                ? "use no identity to match any caller"
                                : CallerPatternError(m->identity);
    if (!why.empty()) {
      r.Error(n["identity"].Mark(), p + ".identity",
              absl::StrCat(why, ", got ", Reader::Quote(m->identity)));
    }
  }
  if (n.IsMap() && n.size() == 0) {
    r.Error(n.Mark(), p,
            "give at least one of service, namespace, labels, locality and "
            "identity");
  }
}

void ReadMatch(Reader& r, const yaml::Node& n, const std::string& p,
               RouteMatch* m) {
  if (!r.ExpectMap(n, p, {"method", "prefix", "headers", "percent", "source"})) {
    return;
  }
  if (n["source"].IsDefined() && !n["source"].IsNull()) {
    ReadSourceMatch(r, n["source"], p + ".source", &m->source);
  }
  if (r.String(n, "method", p, false, &m->method) &&
      !IsMethodPath(m->method)) {
    r.Error(n["method"].Mark(), p + ".method",
            absl::StrCat("must be a full method \"/package.Service/Method\", "
                         "got ",
                         Reader::Quote(m->method)));
  }
  if (r.String(n, "prefix", p, false, &m->prefix) &&
      (m->prefix.empty() || m->prefix[0] != '/')) {
    r.Error(n["prefix"].Mark(), p + ".prefix",
            absl::StrCat("must start with \"/\" (e.g. \"/package.Service/\"), "
                         "got ",
                         Reader::Quote(m->prefix)));
  }
  if (!m->method.empty() && !m->prefix.empty()) {
    r.Error(n.Mark(), p, "set method or prefix, not both");
  }
  const yaml::Node hs = n["headers"];
  if (hs.IsDefined() && !hs.IsNull()) {
    if (!hs.IsSequence()) {
      r.Error(hs.Mark(), p + ".headers", "must be a list of header matches");
    } else {
      for (size_t i = 0; i < hs.size(); ++i) {
        HeaderMatch h;
        ReadHeaderMatch(r, hs[i], absl::StrCat(p, ".headers[", i, "]"), &h);
        m->headers.push_back(std::move(h));
      }
    }
  }
  r.Uint(n, "percent", p, false, 0, 100, &m->percent);
}

void ReadDestination(Reader& r, const yaml::Node& n, const std::string& p,
                     bool weighted, const std::string& service,
                     Destination* d, std::vector<PendingDestination>* pending) {
  std::vector<absl::string_view> keys = {"service", "subset"};
  if (weighted) keys.push_back("weight");
  if (!r.ExpectMap(n, p, keys)) return;
  r.String(n, "service", p, false, &d->service);
  r.String(n, "subset", p, false, &d->subset);
  if (weighted) r.Uint(n, "weight", p, true, 1, 100, &d->weight);
  pending->push_back({n.Mark(), p, service, *d});
}

int64_t ParseStatusCode(const std::string& s) {
  for (const auto& [name, code] : kGrpcCodes) {
    if (name == absl::AsciiStrToUpper(s)) return code;
  }
  int64_t n;
  if (absl::SimpleAtoi(s, &n) && n >= 0 && n <= 16) return n;
  return -1;
}

void ReadRoute(Reader& r, const yaml::Node& n, const std::string& p,
               const std::string& service, Route* route,
               std::vector<PendingDestination>* pending) {
  route->line = n.Mark().is_null() ? 0 : n.Mark().line + 1;
  if (!r.ExpectMap(n, p, {"name", "match", "to", "split", "timeout", "retries",
                          "fault"})) {
    return;
  }
  if (r.String(n, "name", p, true, &route->name) &&
      !IsDnsLabel(route->name)) {
    r.Error(n["name"].Mark(), p + ".name",
            absl::StrCat("must be a DNS label, got ",
                         Reader::Quote(route->name)));
  }
  if (n["match"].IsDefined() && !n["match"].IsNull()) {
    ReadMatch(r, n["match"], p + ".match", &route->match);
  }
  const bool has_to = n["to"].IsDefined(), has_split = n["split"].IsDefined();
  if (has_to == has_split) {
    r.Error(n.Mark(), p, "set exactly one of to and split");
  } else if (has_to) {
    Destination d;
    ReadDestination(r, n["to"], p + ".to", false, service, &d, pending);
    route->destinations.push_back(d);
  } else {
    const yaml::Node split = n["split"];
    if (!split.IsSequence() || split.size() < 2) {
      r.Error(split.Mark(), p + ".split",
              "must be a list of at least two weighted destinations");
    } else {
      uint64_t sum = 0;
      for (size_t i = 0; i < split.size(); ++i) {
        Destination d;
        ReadDestination(r, split[i], absl::StrCat(p, ".split[", i, "]"), true,
                        service, &d, pending);
        sum += d.weight;
        route->destinations.push_back(d);
      }
      if (sum != 100) {
        r.Error(split.Mark(), p + ".split",
                absl::StrCat("weights must sum to 100, got ", sum));
      }
    }
  }
  if (n["timeout"].IsDefined()) {
    // Measured with Debian's gRPC 1.51.1: the xDS route timeout
    // (max_stream_duration) is applied from a stale start time and fires
    // early by an arbitrary amount, so it is refused rather than emitted.
    r.Error(n["timeout"].Mark(), p + ".timeout",
            "route timeouts are not supported: gRPC 1.51.1 applies them from "
            "a stale start time and fails calls early (a 300ms timeout failed "
            "calls after 0.1ms); set a deadline on each call "
            "(ClientContext::set_deadline) instead");
  }
  const yaml::Node re = n["retries"];
  if (re.IsDefined() && !re.IsNull()) {
    const std::string rp = p + ".retries";
    if (r.ExpectMap(re, rp, {"on", "numRetries", "backoff"})) {
      route->has_retries = true;
      RetryPolicy& rt = route->retries;
      rt.on.clear();
      const yaml::Node on = re["on"];
      if (!on.IsDefined() || !on.IsSequence() || on.size() == 0) {
        r.Error(on.IsDefined() ? on.Mark() : re.Mark(), rp + ".on",
                absl::StrCat("must be a non-empty list of: ",
                             absl::StrJoin(kRetryOn, ", ")));
      } else {
        for (size_t i = 0; i < on.size(); ++i) {
          const std::string c = on[i].IsScalar() ? on[i].Scalar() : "";
          bool known = false;
          for (absl::string_view k : kRetryOn) known = known || k == c;
          if (!known) {
            r.Error(on[i].Mark(), absl::StrCat(rp, ".on[", i, "]"),
                    absl::StrCat("gRPC 1.51 retries only on ",
                                 absl::StrJoin(kRetryOn, ", "), "; got ",
                                 Reader::Kind(on[i])));
          } else {
            rt.on.push_back(c);
          }
        }
      }
      // gRPC caps attempts at 5 (4 retries); say so rather than cap.
      r.Uint(re, "numRetries", rp, false, 1, 4, &rt.num_retries);
      const yaml::Node bo = re["backoff"];
      if (bo.IsDefined() && !bo.IsNull() &&
          r.ExpectMap(bo, rp + ".backoff", {"base", "max"})) {
        Duration(r, bo, "base", rp + ".backoff", 1, 10000, &rt.base_ms);
        Duration(r, bo, "max", rp + ".backoff", 1, 60000, &rt.max_ms);
        if (rt.max_ms < rt.base_ms) {
          r.Error(bo.Mark(), rp + ".backoff.max",
                  absl::StrCat("must be at least base (", rt.base_ms,
                               "ms), got ", rt.max_ms, "ms"));
        }
      }
    }
  }
  const yaml::Node f = n["fault"];
  if (f.IsDefined() && !f.IsNull()) {
    const std::string fp = p + ".fault";
    if (r.ExpectMap(f, fp, {"delay", "abort"})) {
      const yaml::Node d = f["delay"];
      if (d.IsDefined() && r.ExpectMap(d, fp + ".delay", {"fixed", "percent"})) {
        if (!Duration(r, d, "fixed", fp + ".delay", 1, 3600000,
                      &route->fault.delay_ms)) {
          if (!d["fixed"].IsDefined()) {
            r.Error(d.Mark(), fp + ".delay.fixed", "required field is missing");
          }
        }
        r.Uint(d, "percent", fp + ".delay", true, 1, 100,
               &route->fault.delay_percent);
      }
      const yaml::Node a = f["abort"];
      if (a.IsDefined() && r.ExpectMap(a, fp + ".abort", {"status", "percent"})) {
        std::string st;
        if (r.String(a, "status", fp + ".abort", true, &st)) {
          const int64_t code = ParseStatusCode(st);
          if (code <= 0) {
            r.Error(a["status"].Mark(), fp + ".abort.status",
                    absl::StrCat("must be a gRPC status other than OK (a name "
                                 "such as UNAVAILABLE, or 1-16), got ",
                                 Reader::Quote(st)));
          } else {
            route->fault.abort_code = static_cast<int>(code);
          }
        }
        r.Uint(a, "percent", fp + ".abort", true, 1, 100,
               &route->fault.abort_percent);
      }
      if (!d.IsDefined() && !a.IsDefined()) {
        r.Error(f.Mark(), fp, "set delay, abort or both");
      }
    }
  }
}

void ReadRoutes(Reader& r, const yaml::Node& list, const std::string& path,
                const std::string& service, std::vector<Route>* out,
                std::vector<PendingDestination>* pending) {
  if (!list.IsSequence()) {
    r.Error(list.Mark(), path,
            absl::StrCat("must be a list of routes, got ", Reader::Kind(list)));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = absl::StrCat(path, "[", i, "]");
    Route route;
    ReadRoute(r, list[i], p, service, &route, pending);
    for (const Route& earlier : *out) {
      if (!route.name.empty() && earlier.name == route.name) {
        r.Error(list[i]["name"].Mark(), p + ".name",
                absl::StrCat("duplicate route name ", route.name));
      }
      if (earlier.match.MatchesEverything()) {
        r.Error(list[i].Mark(), p,
                absl::StrCat("unreachable: route ", earlier.name, " (line ",
                             earlier.line, ") before it matches every call"));
        break;
      }
      if (earlier.match.percent == 100 &&
          earlier.match.ToString() == route.match.ToString()) {
        r.Error(list[i].Mark(), p,
                absl::StrCat("unreachable: route ", earlier.name, " (line ",
                             earlier.line, ") matches the same calls"));
        break;
      }
    }
    out->push_back(std::move(route));
  }
}

// A caller pattern: a SPIFFE ID, a SPIFFE ID prefix ending in "*", or "*".
std::string CallerPatternError(absl::string_view p) {
  if (p == "*") return "";
  if (absl::StrContains(p.substr(0, p.empty() ? 0 : p.size() - 1), "*")) {
    return "\"*\" may only end a pattern";
  }
  if (absl::EndsWith(p, "*")) {
    absl::string_view prefix = p.substr(0, p.size() - 1);
    if (!absl::StartsWith(prefix, "spiffe://") ||
        prefix.size() == strlen("spiffe://") || !absl::EndsWith(prefix, "/")) {
      return "a prefix pattern must look like \"spiffe://TRUST_DOMAIN/*\" "
             "or \"spiffe://TRUST_DOMAIN/PATH/*\" (ending in \"/*\", so "
             "that it cannot match another trust domain)";
    }
    return "";
  }
  absl::StatusOr<identity::SpiffeId> id = identity::ParseSpiffeId(p);
  return id.ok() ? "" : std::string(id.status().message());
}

std::string MethodPatternError(absl::string_view p) {
  if (p == "*") return "";
  if (absl::StrContains(p.substr(0, p.size() - 1), "*")) {
    return "\"*\" may only end a pattern";
  }
  const size_t slash = p.find('/', 1);
  if (!absl::StartsWith(p, "/") || slash == absl::string_view::npos ||
      slash == 1) {
    return "must be \"/package.Service/Method\", \"/package.Service/*\" "
           "or \"*\"";
  }
  return "";
}

void ReadPatterns(Reader& r, const yaml::Node& n, absl::string_view key,
                  const std::string& p, bool required,
                  std::string (*check)(absl::string_view),
                  std::vector<std::string>* out) {
  const yaml::Node list = n[std::string(key)];
  const std::string path = Reader::Join(p, key);
  if (!list.IsDefined() || list.IsNull()) {
    if (required) r.Error(n.Mark(), path, "required field is missing");
    return;
  }
  if (!list.IsSequence() || list.size() == 0) {
    r.Error(list.Mark(), path,
            absl::StrCat("must be a non-empty list of strings, got ",
                         Reader::Kind(list)));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string ip = absl::StrCat(path, "[", i, "]");
    if (!list[i].IsScalar()) {
      r.Error(list[i].Mark(), ip,
              absl::StrCat("must be a string, got ", Reader::Kind(list[i])));
      continue;
    }
    const std::string v = list[i].Scalar();
    const std::string err = check(v);
    if (!err.empty()) {
      r.Error(list[i].Mark(), ip, err);
      continue;
    }
    out->push_back(v);
  }
}

void ReadAuthorization(Reader& r, const yaml::Node& n, const std::string& p,
                       Authorization* out) {
  if (!r.ExpectMap(n, p, {"allow"})) return;
  out->set = true;
  const yaml::Node allow = n["allow"];
  const std::string ap = p + ".allow";
  if (!allow.IsDefined() || allow.IsNull()) {
    r.Error(n.Mark(), ap,
            "required field is missing (write \"allow: []\" to deny every "
            "call)");
    return;
  }
  if (!allow.IsSequence()) {
    r.Error(allow.Mark(), ap,
            absl::StrCat("must be a list of {callers, methods}, got ",
                         Reader::Kind(allow)));
    return;
  }
  for (size_t i = 0; i < allow.size(); ++i) {
    const std::string rp = absl::StrCat(ap, "[", i, "]");
    if (!r.ExpectMap(allow[i], rp, {"callers", "methods"})) continue;
    AuthorizationRule rule;
    rule.line = allow[i].Mark().line + 1;
    ReadPatterns(r, allow[i], "callers", rp, true, CallerPatternError,
                 &rule.callers);
    ReadPatterns(r, allow[i], "methods", rp, false, MethodPatternError,
                 &rule.methods);
    out->allow.push_back(std::move(rule));
  }
}

void ReadService(Reader& r, const yaml::Node& node, const std::string& path,
                 Service* svc, std::vector<PendingDestination>* pending) {
  if (!r.ExpectMap(node, path, {"name", "namespace", "hostname", "port",
                                "endpoints", "dns", "localityPolicy", "healthCheck",
                                "outlierDetection", "circuitBreaker",
                                "subsets", "routes", "identity",
                                "authorization"})) {
    return;
  }
  if (r.String(node, "identity", path, false, &svc->identity)) {
    absl::StatusOr<identity::SpiffeId> id =
        identity::ParseSpiffeId(svc->identity);
    if (!id.ok()) {
      r.Error(node["identity"].Mark(), Reader::Join(path, "identity"),
              id.status().message());
    }
  }
  if (node["authorization"].IsDefined()) {
    ReadAuthorization(r, node["authorization"], path + ".authorization",
                      &svc->authorization);
  }
  if (node["subsets"].IsDefined() && !node["subsets"].IsNull()) {
    ReadSubsets(r, node["subsets"], path + ".subsets", &svc->subsets);
  }
  if (node["localityPolicy"].IsDefined() && !node["localityPolicy"].IsNull()) {
    ReadLocalityPolicy(r, node["localityPolicy"], path + ".localityPolicy",
                       &svc->locality_policy);
  }
  if (node["healthCheck"].IsDefined() && !node["healthCheck"].IsNull()) {
    ReadHealthCheck(r, node["healthCheck"], path + ".healthCheck",
                    &svc->health_check);
  }
  if (node["outlierDetection"].IsDefined() &&
      !node["outlierDetection"].IsNull()) {
    ReadOutlierDetection(r, node["outlierDetection"],
                         path + ".outlierDetection", &svc->outlier_detection);
  }
  if (node["circuitBreaker"].IsDefined() && !node["circuitBreaker"].IsNull()) {
    ReadCircuitBreaker(r, node["circuitBreaker"], path + ".circuitBreaker",
                       &svc->circuit_breaker);
  }
  if (r.String(node, "name", path, true, &svc->name) &&
      !IsDnsLabel(svc->name)) {
    r.Error(node["name"].Mark(), Reader::Join(path, "name"),
            absl::StrCat("must be a DNS label (lowercase letters, digits, "
                         "'-'; at most 63), got ",
                         Reader::Quote(svc->name)));
  }
  if (r.String(node, "namespace", path, false, &svc->namespace_name) &&
      !IsDnsLabel(svc->namespace_name)) {
    r.Error(node["namespace"].Mark(), Reader::Join(path, "namespace"),
            absl::StrCat("must be a DNS label, got ",
                         Reader::Quote(svc->namespace_name)));
  }
  if (r.String(node, "hostname", path, true, &svc->hostname) &&
      !IsDnsName(svc->hostname)) {
    r.Error(node["hostname"].Mark(), Reader::Join(path, "hostname"),
            absl::StrCat("must be a lowercase DNS name such as "
                         "\"app1.mesh.internal\", got ",
                         Reader::Quote(svc->hostname)));
  }
  r.Uint(node, "port", path, false, 1, 65535, &svc->port);
  if (node["routes"].IsDefined() && !node["routes"].IsNull()) {
    ReadRoutes(r, node["routes"], path + ".routes",
               absl::StrCat(svc->namespace_name, "/", svc->name),
               &svc->routes, pending);
  }
  if (node["dns"].IsDefined() && !node["dns"].IsNull()) {
    ReadDns(r, node["dns"], path + ".dns", &svc->dns);
  }
  const yaml::Node eps = node["endpoints"];
  if (!eps.IsDefined() || eps.IsNull()) return;  // No instances (yet).
  ReadEndpointList(r, eps, Reader::Join(path, "endpoints"), &svc->endpoints);
}

// The 1-based line where a second YAML document starts, or 0 if there is
// none. Found in the text, without parsing (parsing every document first
// would make a file of a million "---" lines a million documents).
// Sound because document markers are only markers at column 0, where the
// YAML spec forbids them inside any scalar: "---" (or "...") followed by a
// blank or the end of the line. A first "---" before any content opens the
// first document; "..." ends a document, and content after it is another.
size_t SecondDocumentLine(absl::string_view yaml) {
  bool content = false;  // The first document has begun.
  bool ended = false;    // A "..." ended it.
  size_t line = 0;
  for (absl::string_view l : absl::StrSplit(yaml, '\n')) {
    ++line;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    auto marker = [&](absl::string_view m) {
      return absl::StartsWith(l, m) &&
             (l.size() == 3 || l[3] == ' ' || l[3] == '\t');
    };
    const absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(l);
    const bool blank = trimmed.empty() || trimmed[0] == '#';
    if (marker("---")) {
      if (content || ended) return line;
      content = true;
    } else if (marker("...")) {
      ended = true;
    } else if (!blank && (l[0] != '%' || content)) {
      if (ended) return line;
      content = true;
    }
  }
  return 0;
}

// YAML text to a document, with the checks and messages every document
// gets.
absl::StatusOr<yaml::Document> LoadYaml(absl::string_view yaml,
                                        absl::string_view filename) {
  if (yaml.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename, ": file is ", yaml.size(),
                     " bytes, larger than the limit of ", kMaxConfigBytes));
  }
  // Binary data is not a config.
  if (const size_t nul = yaml.find('\0'); nul != absl::string_view::npos) {
    const absl::string_view before = yaml.substr(0, nul);
    const size_t line = std::count(before.begin(), before.end(), '\n') + 1;
    const size_t last_nl = before.rfind('\n');
    const size_t col =
        last_nl == absl::string_view::npos ? nul + 1 : nul - last_nl;
    return absl::InvalidArgumentError(
        absl::StrCat(filename, ":", line, ":", col,
                     ": contains a NUL byte: a config must be text"));
  }
  if (const size_t line = SecondDocumentLine(yaml); line > 0) {
    // Only the first would be used: refuse rather than ignore the rest.
    return absl::InvalidArgumentError(absl::StrCat(
        filename, ":", line, ":1: a second YAML document (after '---'): a "
        "file holds exactly one document (put each endpoint set in its "
        "own file or etcd key)"));
  }
  absl::StatusOr<yaml::Document> doc = yaml::Document::Parse(yaml, filename);
  if (!doc.ok()) {
    return absl::InvalidArgumentError(Printable(doc.status().message()));
  }
  return doc;
}

// YAML double-quoted scalar (JSON escapes are valid YAML).
std::string YamlQuote(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace

absl::StatusOr<std::shared_ptr<const MeshConfig>> ParseConfig(
    absl::string_view yaml, absl::string_view filename) {
  absl::StatusOr<yaml::Document> loaded = LoadYaml(yaml, filename);
  if (!loaded.ok()) return loaded.status();
  const yaml::Node root = loaded->root();
  Reader r(filename);
  auto cfg = std::make_shared<MeshConfig>();
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename, ": the file is empty (a config needs at "
                               "least apiVersion and trustDomain)"));
  }
  if (r.ExpectMap(root, "",
                  {"apiVersion", "trustDomain", "services", "registration"})) {
    std::string api;
    if (r.String(root, "apiVersion", "", true, &api) && api != kApiVersion) {
      r.Error(root["apiVersion"].Mark(), "apiVersion",
              absl::StrCat("must be \"", kApiVersion, "\", got ",
                           Reader::Quote(api)));
    }
    if (r.String(root, "trustDomain", "", true, &cfg->trust_domain) &&
        !IsTrustDomain(cfg->trust_domain)) {
      r.Error(root["trustDomain"].Mark(), "trustDomain",
              absl::StrCat("must be a SPIFFE trust domain (lowercase "
                           "letters, digits, '.', '-', '_'), got ",
                           Reader::Quote(cfg->trust_domain)));
    }
    const yaml::Node reg = root["registration"];
    if (reg.IsDefined() && !reg.IsNull()) {
      ReadRegistration(r, reg, "registration", &cfg->removal_guard);
    }
    const yaml::Node svcs = root["services"];
    if (svcs.IsDefined() && !svcs.IsNull()) {
      if (!svcs.IsSequence()) {
        r.Error(svcs.Mark(), "services",
                absl::StrCat("must be a list, got ", Reader::Kind(svcs)));
      } else {
        std::map<std::string, size_t> names, hosts;
        std::vector<PendingDestination> pending;
        for (size_t i = 0; i < svcs.size(); ++i) {
          const std::string p = absl::StrCat("services[", i, "]");
          Service svc;
          ReadService(r, svcs[i], p, &svc, &pending);
          const std::string name =
              absl::StrCat(svc.namespace_name, "/", svc.name);
          if (!svc.name.empty() && !names.emplace(name, i).second) {
            r.Error(svcs[i]["name"].Mark(), p + ".name",
                    absl::StrCat("duplicate service ", name, " (also "
                                 "services[", names[name], "])"));
          }
          if (!svc.hostname.empty() &&
              !hosts.emplace(svc.hostname, i).second) {
            r.Error(svcs[i]["hostname"].Mark(), p + ".hostname",
                    absl::StrCat("duplicate hostname ", svc.hostname,
                                 " (also services[", hosts[svc.hostname],
                                 "])"));
          }
          cfg->services.push_back(std::move(svc));
        }
        // Route destinations, now that every service is known.
        for (const PendingDestination& d : pending) {
          const std::string name = d.destination.service.empty()
                                       ? d.from_service
                                       : d.destination.service;
          const Service* target = cfg->FindByName(name);
          if (target == nullptr) {
            r.Error(d.mark, d.path + ".service",
                    absl::StrCat("unknown service ", Reader::Quote(name)));
          } else if (!d.destination.subset.empty() &&
                     target->FindSubset(d.destination.subset) == nullptr) {
            r.Error(d.mark, d.path + ".subset",
                    absl::StrCat("service ", target->namespace_name, "/",
                                 target->name, " has no subset ",
                                 Reader::Quote(d.destination.subset)));
          }
        }
      }
    }
  }
  if (r.has_errors()) return absl::InvalidArgumentError(Printable(r.Report()));
  return std::shared_ptr<const MeshConfig>(std::move(cfg));
}

std::string DnsEndpoints::Key() const {
  return srv ? absl::StrCat("srv ", name) : absl::StrCat(name, ":", port);
}

namespace {

// An EndpointSet or (`instance`) an Instance document.
absl::StatusOr<EndpointSet> ParseEndpointDocument(absl::string_view yaml,
                                                  absl::string_view filename,
                                                  bool instance) {
  absl::StatusOr<yaml::Document> loaded = LoadYaml(yaml, filename);
  if (!loaded.ok()) return loaded.status();
  const yaml::Node root = loaded->root();
  const std::string want = instance ? "Instance" : "EndpointSet";
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(
        filename, instance ? ": empty (an instance needs apiVersion, kind, "
                             "service, identity, started and endpoints)"
                           : ": empty (an endpoint set needs apiVersion, "
                             "kind, service and endpoints)"));
  }
  Reader r(filename);
  EndpointSet set;
  set.instance = instance;
  std::vector<absl::string_view> keys = {"apiVersion", "kind", "service",
                                   "endpoints"};
  if (instance) keys.insert(keys.end(), {"identity", "started"});
  if (r.ExpectMap(root, "", keys)) {
    std::string api, kind;
    if (r.String(root, "apiVersion", "", true, &api) && api != kApiVersion) {
      r.Error(root["apiVersion"].Mark(), "apiVersion",
              absl::StrCat("must be \"", kApiVersion, "\", got ",
                           Reader::Quote(api)));
    }
    if (r.String(root, "kind", "", true, &kind) && kind != want) {
      r.Error(root["kind"].Mark(), "kind",
              absl::StrCat("must be \"", want, "\", got ",
                           Reader::Quote(kind)));
    }
    if (instance &&
        r.String(root, "identity", "", true, &set.identity)) {
      absl::StatusOr<identity::SpiffeId> id =
          identity::ParseSpiffeId(set.identity);
      if (!id.ok()) {
        r.Error(root["identity"].Mark(), "identity", id.status().message());
      }
    }
    if (instance) r.String(root, "started", "", true, &set.started);
    if (r.String(root, "service", "", true, &set.service)) {
      const std::vector<std::string> parts =
          absl::StrSplit(set.service, '/');
      if (parts.size() == 1) set.service = "default/" + set.service;
      const bool ok = parts.size() <= 2 &&
                      std::all_of(parts.begin(), parts.end(), IsDnsLabel);
      if (!ok) {
        r.Error(root["service"].Mark(), "service",
                absl::StrCat("must be \"name\" or \"namespace/name\" "
                             "(DNS labels), got ",
                             Reader::Quote(set.service)));
      }
    }
    const yaml::Node eps = root["endpoints"];
    if (!eps.IsDefined() || eps.IsNull()) {
      r.Error(root.Mark(), "endpoints",
              "required field is missing (an empty list is allowed)");
    } else {
      ReadEndpointList(r, eps, "endpoints", &set.endpoints);
      if (instance && eps.IsSequence() && eps.size() != 1) {
        r.Error(eps.Mark(), "endpoints",
                absl::StrCat("an instance has exactly one endpoint, got ",
                             eps.size()));
      }
    }
  }
  if (r.has_errors()) return absl::InvalidArgumentError(Printable(r.Report()));
  return set;
}

}  // namespace

absl::StatusOr<EndpointSet> ParseEndpointSet(absl::string_view yaml,
                                             absl::string_view filename) {
  return ParseEndpointDocument(yaml, filename, /*instance=*/false);
}

absl::StatusOr<EndpointSet> ParseInstance(absl::string_view yaml,
                                          absl::string_view filename) {
  return ParseEndpointDocument(yaml, filename, /*instance=*/true);
}

const char* HealthName(Health h) {
  switch (h) {
    case Health::kHealthy:
      return "HEALTHY";
    case Health::kUnhealthy:
      return "UNHEALTHY";
    case Health::kDraining:
      return "DRAINING";
  }
  return "HEALTHY";
}

std::string EndpointSetToYaml(const EndpointSet& set) {
  std::string out = absl::StrCat(
      "apiVersion: mesh/v1\nkind: ", set.instance ? "Instance" : "EndpointSet",
      "\nservice: ", YamlQuote(set.service), "\n",
      set.instance ? absl::StrCat("identity: ", YamlQuote(set.identity),
                                  "\nstarted: ", YamlQuote(set.started), "\n")
                   : "",
      "endpoints:", set.endpoints.empty() ? " []" : "", "\n");
  for (const Endpoint& e : set.endpoints) {
    absl::StrAppend(&out, "  - address: ", YamlQuote(e.address),
                    "\n    port: ", e.port, "\n    locality: {region: ",
                    YamlQuote(e.locality.region), ", zone: ",
                    YamlQuote(e.locality.zone), ", cluster: ",
                    YamlQuote(e.locality.cluster), "}\n    weight: ", e.weight,
                    "\n");
    if (e.health != Health::kHealthy) {
      absl::StrAppend(&out, "    health: ", HealthName(e.health), "\n");
    }
    if (!e.labels.empty()) {
      absl::StrAppend(&out, "    labels:\n");
      for (const auto& [k, v] : e.labels) {
        absl::StrAppend(&out, "      ", YamlQuote(k), ": ", YamlQuote(v), "\n");
      }
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = absl::StrCat(path, ": ", strerror(err));
    if (err == ENOENT) return absl::NotFoundError(msg);
    if (err == EACCES) return absl::PermissionDeniedError(msg);
    return absl::FailedPreconditionError(msg);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not a regular file"));
  }
  std::string data;
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string msg = absl::StrCat(path, ": ", strerror(errno));
      close(fd);
      return absl::FailedPreconditionError(msg);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > max_bytes) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": file is larger than the limit of ", max_bytes, " bytes"));
    }
  }
  close(fd);
  return data;
}

absl::StatusOr<std::shared_ptr<const MeshConfig>> LoadConfigFile(
    const std::string& path) {
  absl::StatusOr<std::string> data = ReadFileToString(path, kMaxConfigBytes);
  if (!data.ok()) return data.status();
  return ParseConfig(*data, path);
}

}  // namespace config
}  // namespace mesh
