#include "mesh/policy/authorization.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mesh {
namespace policy {

namespace {

// "*" matches anything, "abc*" anything starting with "abc", else equality.
bool Matches(absl::string_view pattern, absl::string_view value) {
  if (absl::EndsWith(pattern, "*")) {
    return absl::StartsWith(value, pattern.substr(0, pattern.size() - 1));
  }
  return pattern == value;
}

bool AnyMatches(const std::vector<std::string>& patterns,
                absl::string_view value) {
  for (const std::string& p : patterns) {
    if (Matches(p, value)) return true;
  }
  return false;
}

}  // namespace

Authorizer Authorizer::ForService(const config::MeshConfig& config,
                                  const config::Service& s) {
  Authorizer a;
  if (!s.authorization.set) {
    a.rules_.push_back(
        {{absl::StrCat("spiffe://", config.trust_domain, "/*")}, {}});
    return a;
  }
  for (const config::AuthorizationRule& r : s.authorization.allow) {
    a.rules_.push_back({r.callers, r.methods});
  }
  return a;
}

bool Authorizer::Allowed(absl::string_view caller,
                         absl::string_view method) const {
  if (caller.empty()) return false;
  for (const Rule& r : rules_) {
    if (AnyMatches(r.callers, caller) &&
        (r.methods.empty() || AnyMatches(r.methods, method))) {
      return true;
    }
  }
  return false;
}

// "allow CALLER CALLER...\tMETHOD METHOD..." per rule (patterns never hold
// spaces or tabs: the config refuses them).
std::string Authorizer::Encode() const {
  std::vector<std::string> lines;
  for (const Rule& r : rules_) {
    lines.push_back(absl::StrCat("allow ", absl::StrJoin(r.callers, " "),
                                 "\t", absl::StrJoin(r.methods, " ")));
  }
  return absl::StrJoin(lines, "\n");
}

absl::StatusOr<Authorizer> Authorizer::Decode(absl::string_view text) {
  Authorizer a;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (!absl::ConsumePrefix(&line, "allow ")) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad authorization line: ", line));
    }
    std::vector<absl::string_view> parts = absl::StrSplit(line, '\t');
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad authorization line: ", line));
    }
    Rule r;
    r.callers = absl::StrSplit(parts[0], ' ', absl::SkipEmpty());
    r.methods = absl::StrSplit(parts[1], ' ', absl::SkipEmpty());
    a.rules_.push_back(std::move(r));
  }
  return a;
}

std::string Authorizer::Describe() const {
  if (rules_.empty()) return "deny every call";
  std::vector<std::string> out;
  for (const Rule& r : rules_) {
    out.push_back(absl::StrCat(
        "allow ", absl::StrJoin(r.callers, ", "), " to call ",
        r.methods.empty() ? "any method" : absl::StrJoin(r.methods, ", ")));
  }
  return absl::StrJoin(out, "; ");
}

bool SplitAddress(absl::string_view address, std::string* ip,
                  uint32_t* port) {
  absl::string_view host;
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return false;
  host = address.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
    return false;
  }
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port == 0 ||
      *port > 65535) {
    return false;
  }
  const std::string h(host);
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  const int family = h.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(family, h.c_str(), buf) != 1 ||
      inet_ntop(family, buf, text, sizeof(text)) == nullptr) {
    return false;
  }
  *ip = text;
  return true;
}

bool IsLocalAddress(const std::string& ip) {
  sockaddr_storage ss = {};
  socklen_t len = 0;
  int family = AF_INET;
  if (ip.find(':') == std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    if (inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1) return false;
    len = sizeof(*a);
  } else {
    family = AF_INET6;
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1) return false;
    len = sizeof(*a);
  }
  const int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  close(fd);
  return ok;
}

namespace {

// The canonical text form of an IP literal ("" if it is not one).
std::string CanonicalIp(const std::string& ip) {
  std::string out;
  uint32_t port;
  const bool v6 = ip.find(':') != std::string::npos;
  if (!SplitAddress(v6 ? absl::StrCat("[", ip, "]:1") : ip + ":1", &out,
                    &port)) {
    return "";
  }
  return out;
}

}  // namespace

ServerPolicy PolicyForServer(const config::MeshConfig& config,
                             absl::string_view address,
                             const ServerSelf& self) {
  ServerPolicy p;
  p.address = std::string(address);
  std::string ip;
  uint32_t port = 0;
  if (!SplitAddress(address, &ip, &port)) {
    p.problem = absl::StrCat(
        "the listening address ", address,
        " is not IP:PORT, so no service's endpoint can be matched to it");
    return p;
  }
  const bool any4 = ip == "0.0.0.0";
  const bool any6 = ip == "::";  // Dual-stack: IPv4 connections arrive too.
  // The services with an endpoint at this address (in config order).
  std::vector<const config::Service*> owners;
  for (const config::Service& s : config.services) {
    for (const config::Endpoint& e : s.endpoints) {
      if (e.port != port) continue;
      const std::string eip = CanonicalIp(e.address);
      const bool e6 = eip.find(':') != std::string::npos;
      bool here = eip == ip;
      if (!here && (any6 || (any4 && !e6))) {
        here = self.is_local != nullptr && self.is_local(eip);
      }
      if (here) {
        owners.push_back(&s);
        break;
      }
    }
  }
  const std::string where =
      any4 || any6 ? absl::StrCat("port ", port, " of this host (", address,
                                  " is a wildcard)")
                   : std::string(address);
  if (owners.empty()) {
    auto reg = self.registered.find(std::string(address));
    if (reg != self.registered.end()) {
      const config::Service* s = config.FindByName(reg->second);
      if (s != nullptr) owners.push_back(s);
    }
  }
  if (owners.empty()) {
    p.problem = absl::StrCat("no service in the config has an endpoint at ",
                             where, ", so this server cannot tell whose "
                             "policy to enforce");
    return p;
  }
  if (owners.size() > 1) {
    std::vector<std::string> names;
    for (const config::Service* s : owners) {
      names.push_back(absl::StrCat(s->namespace_name, "/", s->name));
    }
    p.problem = absl::StrCat("several services have an endpoint at ", where,
                             " (", absl::StrJoin(names, ", "),
                             "), so this server cannot tell whose policy to "
                             "enforce");
    return p;
  }
  const config::Service& served = *owners[0];
  p.service = absl::StrCat(served.namespace_name, "/", served.name);
  const std::string want = served.Identity(config.trust_domain);
  if (!self.identity.empty() && self.identity != want) {
    p.problem = absl::StrCat(
        where, " is an endpoint of ", p.service, ", whose servers must be ",
        want, ", but this server's SVID is ", self.identity);
    return p;
  }
  if (!self.service.empty() && config.FindByName(self.service) != &served) {
    const config::Service* claimed = config.FindByName(self.service);
    if (claimed == nullptr) {
      p.problem = absl::StrCat(
          "this process says it is service '", self.service,
          "' (MeshOptions::service_name), which the config does not have, "
          "but ", where, " is an endpoint of ", p.service);
      return p;
    }
    const std::string claimed_id = claimed->Identity(config.trust_domain);
    if (claimed_id != want) {
      p.problem = absl::StrCat(
          "this process says it is service ", claimed->namespace_name, "/",
          claimed->name, " (identity ", claimed_id, ") but ", where,
          " is an endpoint of ", p.service, " (identity ", want, ")");
      return p;
    }
  }
  p.authorizer = Authorizer::ForService(config, served);
  return p;
}

std::string ServerPolicy::Encode() const {
  return absl::StrCat(address, "\t", service, "\t", problem, "\n",
                      authorizer.Encode());
}

absl::StatusOr<ServerPolicy> ServerPolicy::Decode(absl::string_view text) {
  const size_t nl = text.find('\n');
  std::vector<std::string> head =
      absl::StrSplit(text.substr(0, nl), absl::MaxSplits('\t', 2));
  if (head.size() != 3 || head[0].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad server policy: ", text.substr(0, nl)));
  }
  ServerPolicy p;
  p.address = head[0];
  p.service = head[1];
  p.problem = head[2];
  if (nl != absl::string_view::npos) {
    absl::StatusOr<Authorizer> a = Authorizer::Decode(text.substr(nl + 1));
    if (!a.ok()) return a.status();
    p.authorizer = *std::move(a);
  }
  if (!p.problem.empty()) p.authorizer = Authorizer();  // Denies all.
  return p;
}

std::string ServerPolicy::Describe() const {
  if (!problem.empty()) {
    return absl::StrCat(address, ": DENIES EVERY CALL: ", problem);
  }
  return absl::StrCat(address, " serves ", service, ": ",
                      authorizer.Describe());
}

}  // namespace policy
}  // namespace mesh
