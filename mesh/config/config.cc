// Parsing and validation of the mesh/v1 config (see config.h, docs/config.md).
//
// yaml-cpp reports syntax errors by exception; they are caught here, at the
// boundary, and turned into the same "FILE:LINE:COL: message" form as every
// validation problem. Validation never stops at the first problem.

#include "mesh/config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "yaml-cpp/yaml.h"

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

  void Error(const YAML::Mark& mark, absl::string_view path,
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
  bool ExpectMap(const YAML::Node& node, absl::string_view path,
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
  bool String(const YAML::Node& map, absl::string_view key,
              absl::string_view path, bool required, std::string* out) {
    const YAML::Node v = map[std::string(key)];
    const std::string field = Join(path, key);
    if (!v.IsDefined() || v.IsNull()) {
      if (required) Error(map.Mark(), field, "required field is missing");
      return false;
    }
    if (!v.IsScalar()) {
      Error(v.Mark(), field, absl::StrCat("must be a string, got ", Kind(v)));
      return false;
    }
    *out = v.Scalar();
    return true;
  }

  bool Uint(const YAML::Node& map, absl::string_view key,
            absl::string_view path, bool required, uint32_t min, uint32_t max,
            uint32_t* out) {
    const YAML::Node v = map[std::string(key)];
    const std::string field = Join(path, key);
    if (!v.IsDefined() || v.IsNull()) {
      if (required) Error(map.Mark(), field, "required field is missing");
      return false;
    }
    uint64_t n = 0;
    if (!v.IsScalar() || !absl::SimpleAtoi(v.Scalar(), &n)) {
      Error(v.Mark(), field,
            absl::StrCat("must be an integer, got ",
                         v.IsScalar() ? Quote(v.Scalar()) : Kind(v)));
      return false;
    }
    if (n < min || n > max) {
      Error(v.Mark(), field,
            absl::StrCat("must be between ", min, " and ", max, ", got ", n));
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

  static std::string Kind(const YAML::Node& n) {
    switch (n.Type()) {
      case YAML::NodeType::Map:
        return "a map";
      case YAML::NodeType::Sequence:
        return "a list";
      case YAML::NodeType::Scalar:
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

void ReadLocality(Reader& r, const YAML::Node& parent, const std::string& path,
                  Locality* out) {
  const YAML::Node node = parent["locality"];
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

void ReadEndpoint(Reader& r, const YAML::Node& node, const std::string& path,
                  Endpoint* ep) {
  ep->line = node.Mark().is_null() ? 0 : node.Mark().line + 1;
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
  const YAML::Node labels = node["labels"];
  const std::string lpath = Reader::Join(path, "labels");
  if (labels.IsDefined() && !labels.IsNull()) {
    if (!labels.IsMap()) {
      r.Error(labels.Mark(), lpath,
              absl::StrCat("must be a map, got ", Reader::Kind(labels)));
    } else {
      for (const auto& kv : labels) {
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
        const std::string field = Reader::Join(lpath, key);
        if (!IsToken(key, true)) {
          r.Error(kv.first.Mark(), field,
                  "label keys must be 1-128 letters, digits, '.', '_', '-' "
                  "or '/'");
        } else if (!kv.second.IsScalar()) {
          r.Error(kv.second.Mark(), field, "label values must be strings");
        } else if (!ep->labels.emplace(key, kv.second.Scalar()).second) {
          r.Error(kv.first.Mark(), field, "duplicate key");
        }
      }
    }
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

bool ReadPattern(Reader& r, const YAML::Node& node, const std::string& path,
                 LocalityPattern* out) {
  if (!node.IsScalar() || !ParsePattern(node.Scalar(), out)) {
    r.Error(node.Mark(), path,
            absl::StrCat(kPatternHelp, ", got ", Reader::Kind(node)));
    return false;
  }
  return true;
}

// "5s", "250ms", "1m". Returns milliseconds.
bool Duration(Reader& r, const YAML::Node& map, absl::string_view key,
              absl::string_view path, int64_t min_ms, int64_t max_ms,
              int64_t* out) {
  const YAML::Node v = map[std::string(key)];
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
            absl::StrCat("must be between ", min_ms, "ms and ", max_ms,
                         "ms, got ", v.Scalar()));
    return false;
  }
  *out = ms;
  return true;
}

void ReadFailover(Reader& r, const YAML::Node& list, const std::string& path,
                  std::vector<FailoverRule>* out) {
  if (!list.IsSequence() || list.size() == 0) {
    r.Error(list.Mark(), path,
            absl::StrCat("must be a non-empty list of {from, to} rules, got ",
                         Reader::Kind(list)));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = absl::StrCat(path, "[", i, "]");
    const YAML::Node n = list[i];
    if (!r.ExpectMap(n, p, {"from", "to"})) continue;
    FailoverRule rule;
    rule.line = n.Mark().line + 1;
    bool ok = true;
    if (!n["from"].IsDefined()) {
      r.Error(n.Mark(), p + ".from", "required field is missing");
      ok = false;
    } else if (ReadPattern(r, n["from"], p + ".from", &rule.from)) {
      if (rule.from.region == "*" || rule.from.cluster != "*") {
        r.Error(n["from"].Mark(), p + ".from",
                "must name a region or a region/zone");
        ok = false;
      }
    } else {
      ok = false;
    }
    const YAML::Node to = n["to"];
    if (!to.IsDefined() || !to.IsSequence() || to.size() == 0) {
      r.Error(to.IsDefined() ? to.Mark() : n.Mark(), p + ".to",
              "must be a non-empty list of locality patterns");
      ok = false;
    } else {
      for (size_t j = 0; j < to.size(); ++j) {
        LocalityPattern t;
        if (ReadPattern(r, to[j], absl::StrCat(p, ".to[", j, "]"), &t)) {
          rule.to.push_back(t);
        } else {
          ok = false;
        }
      }
    }
    for (const FailoverRule& other : *out) {
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

void ReadDistribute(Reader& r, const YAML::Node& list, const std::string& path,
                    std::vector<DistributeRule>* out) {
  if (!list.IsSequence() || list.size() == 0) {
    r.Error(list.Mark(), path,
            absl::StrCat("must be a non-empty list of {from, to} rules, got ",
                         Reader::Kind(list)));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string p = absl::StrCat(path, "[", i, "]");
    const YAML::Node n = list[i];
    if (!r.ExpectMap(n, p, {"from", "to"})) continue;
    DistributeRule rule;
    rule.line = n.Mark().line + 1;
    bool ok = n["from"].IsDefined()
                  ? ReadPattern(r, n["from"], p + ".from", &rule.from)
                  : (r.Error(n.Mark(), p + ".from",
                             "required field is missing"),
                     false);
    const YAML::Node to = n["to"];
    if (!to.IsDefined() || !to.IsMap() || to.size() == 0) {
      r.Error(to.IsDefined() ? to.Mark() : n.Mark(), p + ".to",
              "must be a non-empty map of locality pattern to weight");
      ok = false;
    } else {
      uint64_t sum = 0;
      bool weights_ok = true;  // Independent of `from`: report both.
      std::set<std::string> seen;
      for (const auto& kv : to) {
        LocalityPattern t;
        const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
        const std::string field = absl::StrCat(p, ".to.", key);
        if (!ReadPattern(r, kv.first, field, &t)) {
          weights_ok = false;
          continue;
        }
        if (!seen.insert(t.ToString()).second) {
          r.Error(kv.first.Mark(), field, "duplicate key");
          weights_ok = false;
          continue;
        }
        uint64_t w = 0;
        if (!kv.second.IsScalar() || !absl::SimpleAtoi(kv.second.Scalar(), &w) ||
            w < 1 || w > 100) {
          r.Error(kv.second.Mark(), field,
                  absl::StrCat("must be a weight between 1 and 100, got ",
                               Reader::Kind(kv.second)));
          weights_ok = false;
          continue;
        }
        sum += w;
        rule.to.push_back({t, static_cast<uint32_t>(w)});
      }
      if (weights_ok && sum != 100) {
        r.Error(to.Mark(), p + ".to",
                absl::StrCat("weights must sum to 100, got ", sum));
        weights_ok = false;
      }
      ok = ok && weights_ok;
    }
    for (const DistributeRule& other : *out) {
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

void ReadLocalityPolicy(Reader& r, const YAML::Node& node,
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
  const YAML::Node fp = node["failoverPriority"];
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
  const YAML::Node za = node["zoneAware"];
  if (za.IsDefined() && !za.IsNull()) {
    const std::string p = path + ".zoneAware";
    if (r.ExpectMap(za, p, {"minEndpoints"})) {
      lp->zone_aware = true;
      r.Uint(za, "minEndpoints", p, false, 1, 1000000,
             &lp->zone_aware_min_endpoints);
    }
  }
  const YAML::Node sp = node["spillover"];
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
      const YAML::Node of = sp["overprovisioningFactor"];
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

void ReadHealthCheck(Reader& r, const YAML::Node& node,
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

void ReadService(Reader& r, const YAML::Node& node, const std::string& path,
                 Service* svc) {
  if (!r.ExpectMap(node, path, {"name", "namespace", "hostname", "port",
                                "endpoints", "localityPolicy",
                                "healthCheck"})) {
    return;
  }
  if (node["localityPolicy"].IsDefined() && !node["localityPolicy"].IsNull()) {
    ReadLocalityPolicy(r, node["localityPolicy"], path + ".localityPolicy",
                       &svc->locality_policy);
  }
  if (node["healthCheck"].IsDefined() && !node["healthCheck"].IsNull()) {
    ReadHealthCheck(r, node["healthCheck"], path + ".healthCheck",
                    &svc->health_check);
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
  const YAML::Node eps = node["endpoints"];
  const std::string epath = Reader::Join(path, "endpoints");
  if (!eps.IsDefined() || eps.IsNull()) return;  // No instances (yet).
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
    svc->endpoints.push_back(std::move(ep));
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const MeshConfig>> ParseConfig(
    absl::string_view yaml, absl::string_view filename) {
  if (yaml.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename, ": file is ", yaml.size(),
                     " bytes, larger than the limit of ", kMaxConfigBytes));
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    // e.mark is 0-based; e.msg is yaml-cpp's own text.
    return absl::InvalidArgumentError(Printable(
        e.mark.is_null()
            ? absl::StrCat(filename, ": YAML syntax error: ", e.msg)
            : absl::StrCat(filename, ":", e.mark.line + 1, ":",
                           e.mark.column + 1, ": YAML syntax error: ",
                           e.msg)));
  }
  Reader r(filename);
  auto cfg = std::make_shared<MeshConfig>();
  try {
    if (!root.IsDefined() || root.IsNull()) {
      return absl::InvalidArgumentError(
          absl::StrCat(filename, ": the file is empty (a config needs at "
                                 "least apiVersion and trustDomain)"));
    }
    if (r.ExpectMap(root, "", {"apiVersion", "trustDomain", "services"})) {
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
      const YAML::Node svcs = root["services"];
      if (svcs.IsDefined() && !svcs.IsNull()) {
        if (!svcs.IsSequence()) {
          r.Error(svcs.Mark(), "services",
                  absl::StrCat("must be a list, got ", Reader::Kind(svcs)));
        } else {
          std::map<std::string, size_t> names, hosts;
          for (size_t i = 0; i < svcs.size(); ++i) {
            const std::string p = absl::StrCat("services[", i, "]");
            Service svc;
            ReadService(r, svcs[i], p, &svc);
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
        }
      }
    }
  } catch (const YAML::Exception& e) {
    // Not expected after a successful Load, but yaml-cpp may still throw
    // (e.g. on conversions); never let it reach the host.
    r.Error(e.mark, "", absl::StrCat("YAML error: ", e.msg));
  }
  if (r.has_errors()) return absl::InvalidArgumentError(Printable(r.Report()));
  return std::shared_ptr<const MeshConfig>(std::move(cfg));
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
