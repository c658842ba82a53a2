#include "examples/gateway/gateway_config.h"

#include <openssl/evp.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mesh {
namespace gateway {
namespace {

// Reads one YAML document, collecting every problem with its line.
class Reader {
 public:
  explicit Reader(const std::string& name) : name_(name) {}

  void Error(const YAML::Mark& mark, const std::string& field,
             const std::string& what) {
    errors_.push_back(absl::StrCat(name_, ":", mark.line + 1, ": ", field,
                                   field.empty() ? "" : ": ", what));
  }

  // True if `node` is a map whose keys are all in `known`.
  bool Map(const YAML::Node& node, const std::string& field,
           const std::set<std::string>& known) {
    if (!node.IsMap()) {
      Error(node.Mark(), field, "must be a map");
      return false;
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      const std::string key =
          kv.first.IsScalar() ? kv.first.Scalar() : std::string();
      const std::string path = field.empty() ? key : field + "." + key;
      if (!kv.first.IsScalar()) {
        Error(kv.first.Mark(), field, "keys must be plain strings");
      } else if (!seen.insert(key).second) {
        Error(kv.first.Mark(), path, "duplicate key");
      } else if (known.count(key) == 0) {
        Error(kv.first.Mark(), path,
              absl::StrCat("unknown field (known: ", absl::StrJoin(known, ", "),
                           ")"));
      }
    }
    return true;
  }

  bool String(const YAML::Node& map, const std::string& key,
              const std::string& field, std::string* out, bool required) {
    const YAML::Node v = map[key];
    if (!v) {
      if (required) Error(map.Mark(), field, "required field is missing");
      return false;
    }
    if (!v.IsScalar() || v.Scalar().empty()) {
      Error(v.Mark(), field, "must be a non-empty string");
      return false;
    }
    *out = v.Scalar();
    return true;
  }

  void Bool(const YAML::Node& map, const std::string& key,
            const std::string& field, bool* out) {
    const YAML::Node v = map[key];
    if (!v) return;
    if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false")) {
      Error(v.Mark(), field, "must be true or false");
      return;
    }
    *out = v.Scalar() == "true";
  }

  template <typename T>
  void Number(const YAML::Node& map, const std::string& key,
              const std::string& field, T min, T max, T* out) {
    const YAML::Node v = map[key];
    if (!v) return;
    T n{};
    if (!v.IsScalar() || !absl::SimpleAtoi(v.Scalar(), &n) || n < min ||
        n > max) {
      Error(v.Mark(), field,
            absl::StrCat("must be a whole number from ", min, " to ", max));
      return;
    }
    *out = n;
  }

  void Rate(const YAML::Node& map, const std::string& key,
            const std::string& field, double* out) {
    const YAML::Node v = map[key];
    if (!v) return;
    double n = 0;
    if (!v.IsScalar() || !absl::SimpleAtod(v.Scalar(), &n) || !(n >= 0) ||
        n > 1e9) {
      Error(v.Mark(), field, "must be a number from 0 to 1e9");
      return;
    }
    *out = n;
  }

  // A non-empty list of non-empty strings without spaces.
  bool Words(const YAML::Node& map, const std::string& key,
             const std::string& field, std::vector<std::string>* out,
             bool required) {
    const YAML::Node v = map[key];
    if (!v) {
      if (required) Error(map.Mark(), field, "required field is missing");
      return false;
    }
    if (!v.IsSequence() || v.size() == 0) {
      Error(v.Mark(), field, "must be a non-empty list of strings");
      return false;
    }
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i].IsScalar() || v[i].Scalar().empty() ||
          v[i].Scalar().find(' ') != std::string::npos) {
        Error(v[i].Mark(), absl::StrCat(field, "[", i, "]"),
              "must be a non-empty string without spaces");
        return false;
      }
      out->push_back(v[i].Scalar());
    }
    return true;
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  const std::string name_;
  std::vector<std::string> errors_;
};

bool ValidHost(const std::string& h) {
  if (h == "*") return true;
  absl::string_view rest = h;
  if (absl::StartsWith(rest, "*.")) rest.remove_prefix(2);
  if (rest.empty()) return false;
  for (char c : rest) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_')) {
      return false;
    }
  }
  return rest.front() != '.' && rest.back() != '.';
}

// A header the gateway may set from a claim: lower case, and none of the
// names it forwards, sets or consumes itself.
std::string ClaimHeaderProblem(const std::string& h) {
  if (h.empty()) return "must be a header name";
  for (char c : h) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' ||
          c == '_' || c == '.')) {
      return "must be a lower-case header name (a-z, 0-9, -, _, .)";
    }
  }
  if (absl::StartsWith(h, "grpc-") || absl::StartsWith(h, "x-mesh-") ||
      absl::EndsWith(h, "-bin")) {
    return "grpc-*, x-mesh-* and *-bin are reserved";
  }
  static const std::set<std::string> kReserved = {
      "authorization", "x-api-key", "x-forwarded-for", "te", "host",
      "content-type", "user-agent", "connection", "content-length"};
  if (kReserved.count(h) != 0) return "is a header the gateway handles itself";
  return "";
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

absl::StatusOr<GatewayConfig> ParseGatewayConfig(absl::string_view yaml,
                                                 const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ":", e.mark.line + 1, ": YAML syntax error: ", e.msg));
  }
  Reader r(name);
  GatewayConfig c;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ":1: the gateway config must be a YAML map"));
  }
  r.Map(root, "", {"listen", "tls", "plaintext", "apiKeys", "jwt",
                   "allowUnauthenticated", "routes", "limits"});
  r.String(root, "listen", "listen", &c.listen, true);
  if (!c.listen.empty() && (c.listen.rfind(':') == std::string::npos ||
                            c.listen.back() == ':')) {
    r.Error(root["listen"].Mark(), "listen", "must be HOST:PORT");
  }
  r.Bool(root, "plaintext", "plaintext", &c.plaintext);
  if (const YAML::Node tls = root["tls"]; tls) {
    if (r.Map(tls, "tls", {"certificate", "privateKey"})) {
      r.String(tls, "certificate", "tls.certificate", &c.tls_certificate,
               true);
      r.String(tls, "privateKey", "tls.privateKey", &c.tls_private_key, true);
    }
    if (c.plaintext) {
      r.Error(tls.Mark(), "tls", "give either tls or plaintext: true, not both");
    }
  } else if (!c.plaintext) {
    r.Error(root.Mark(), "tls",
            "required (a server certificate for callers from outside), or "
            "plaintext: true for local use");
  }
  r.Bool(root, "allowUnauthenticated", "allowUnauthenticated",
         &c.allow_unauthenticated);
  if (const YAML::Node keys = root["apiKeys"]; keys) {
    if (!keys.IsSequence()) {
      r.Error(keys.Mark(), "apiKeys", "must be a list");
    } else {
      std::set<std::string> clients, hashes;
      for (size_t i = 0; i < keys.size(); ++i) {
        const std::string f = absl::StrCat("apiKeys[", i, "]");
        if (!r.Map(keys[i], f, {"client", "sha256"})) continue;
        ApiKey k;
        r.String(keys[i], "client", f + ".client", &k.client, true);
        if (r.String(keys[i], "sha256", f + ".sha256", &k.sha256_hex, true)) {
          k.sha256_hex = absl::AsciiStrToLower(k.sha256_hex);
          bool hex = k.sha256_hex.size() == 64;
          for (char ch : k.sha256_hex) hex = hex && absl::ascii_isxdigit(ch);
          if (!hex) {
            r.Error(keys[i]["sha256"].Mark(), f + ".sha256",
                    "must be 64 hex digits: the SHA-256 of the key "
                    "(printf %s KEY | sha256sum)");
          } else if (!hashes.insert(k.sha256_hex).second) {
            r.Error(keys[i]["sha256"].Mark(), f + ".sha256",
                    "the same key is listed twice");
          }
        }
        if (!k.client.empty() && !clients.insert(k.client).second) {
          r.Error(keys[i]["client"].Mark(), f + ".client",
                  "duplicate client name");
        }
        c.api_keys.push_back(k);
      }
    }
  }
  if (const YAML::Node j = root["jwt"]; j) {
    c.has_jwt = true;
    if (r.Map(j, "jwt", {"jwksFile", "issuer", "audiences",
                         "clockSkewSeconds", "claimHeaders", "forwardToken",
                         "jwksCheckSeconds"})) {
      r.String(j, "jwksFile", "jwt.jwksFile", &c.jwt.jwks_file, true);
      r.String(j, "issuer", "jwt.issuer", &c.jwt.issuer, true);
      r.Words(j, "audiences", "jwt.audiences", &c.jwt.audiences, true);
      int skew = 60, check = 1;
      r.Number<int>(j, "clockSkewSeconds", "jwt.clockSkewSeconds", 0, 600,
                    &skew);
      r.Number<int>(j, "jwksCheckSeconds", "jwt.jwksCheckSeconds", 1, 3600,
                    &check);
      c.jwt.clock_skew = absl::Seconds(skew);
      c.jwt.jwks_check_interval = absl::Seconds(check);
      r.Bool(j, "forwardToken", "jwt.forwardToken", &c.jwt.forward_token);
      if (const YAML::Node ch = j["claimHeaders"]; ch) {
        if (!ch.IsMap()) {
          r.Error(ch.Mark(), "jwt.claimHeaders",
                  "must be a map of claim: header");
        } else {
          std::map<std::string, std::string> headers;  // -> claim
          for (const auto& kv : ch) {
            const std::string claim =
                kv.first.IsScalar() ? kv.first.Scalar() : "";
            const std::string f = "jwt.claimHeaders." + claim;
            if (claim.empty() || !kv.second.IsScalar()) {
              r.Error(kv.first.Mark(), f,
                      "must be claim: header (two plain strings)");
              continue;
            }
            const std::string header = kv.second.Scalar();
            if (const std::string p = ClaimHeaderProblem(header); !p.empty()) {
              r.Error(kv.second.Mark(), f, absl::StrCat("\"", header, "\" ", p));
            } else if (c.jwt.claim_headers.count(claim) != 0) {
              r.Error(kv.first.Mark(), f, "duplicate key");
            } else if (headers.count(header) != 0) {
              r.Error(kv.second.Mark(), f,
                      absl::StrCat("header \"", header,
                                   "\" is already set from claim ",
                                   headers[header]));
            } else {
              headers[header] = claim;
              c.jwt.claim_headers[claim] = header;
            }
          }
        }
      }
    }
  }
  if (c.api_keys.empty() && !c.has_jwt && !c.allow_unauthenticated) {
    r.Error(root.Mark(), "apiKeys",
            "required (callers from outside must present a key), or jwt, or "
            "allowUnauthenticated: true");
  }
  if ((!c.api_keys.empty() || c.has_jwt) && c.allow_unauthenticated) {
    r.Error(root["allowUnauthenticated"].Mark(), "allowUnauthenticated",
            "cannot be true when apiKeys or jwt are given");
  }
  if (const YAML::Node routes = root["routes"];
      !routes || !routes.IsSequence() || routes.size() == 0) {
    r.Error(routes ? routes.Mark() : root.Mark(), "routes",
            "required: a non-empty list");
  } else {
    for (size_t i = 0; i < routes.size(); ++i) {
      const std::string f = absl::StrCat("routes[", i, "]");
      if (!r.Map(routes[i], f, {"host", "methodPrefix", "destination",
                                 "requiredScopes"})) {
        continue;
      }
      Route rt;
      rt.line = routes[i].Mark().line + 1;
      if (r.String(routes[i], "host", f + ".host", &rt.host, true)) {
        rt.host = absl::AsciiStrToLower(rt.host);
        if (!ValidHost(rt.host)) {
          r.Error(routes[i]["host"].Mark(), f + ".host",
                  "must be a host name, \"*.DOMAIN\" or \"*\" (no port)");
        }
      }
      if (r.String(routes[i], "methodPrefix", f + ".methodPrefix",
                   &rt.method_prefix, false) &&
          rt.method_prefix.front() != '/') {
        r.Error(routes[i]["methodPrefix"].Mark(), f + ".methodPrefix",
                "must start with \"/\" (e.g. /package.Service/)");
      }
      r.String(routes[i], "destination", f + ".destination", &rt.destination,
               true);
      if (r.Words(routes[i], "requiredScopes", f + ".requiredScopes",
                  &rt.required_scopes, false) &&
          !c.has_jwt) {
        r.Error(routes[i]["requiredScopes"].Mark(), f + ".requiredScopes",
                "needs jwt (scopes come from the caller's token)");
      }
      c.routes.push_back(rt);
    }
  }
  if (const YAML::Node l = root["limits"]; l) {
    if (r.Map(l, "limits", {"maxMessageBytes", "maxStreamsPerClient",
                            "callsPerSecondPerClient", "burstPerClient"})) {
      r.Number<int64_t>(l, "maxMessageBytes", "limits.maxMessageBytes", 1,
                        int64_t{1} << 30, &c.limits.max_message_bytes);
      r.Number<int>(l, "maxStreamsPerClient", "limits.maxStreamsPerClient", 1,
                    1000000, &c.limits.max_streams_per_client);
      r.Rate(l, "callsPerSecondPerClient", "limits.callsPerSecondPerClient",
             &c.limits.calls_per_second_per_client);
      r.Rate(l, "burstPerClient", "limits.burstPerClient",
             &c.limits.burst_per_client);
    }
  }
  if (!r.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(r.errors(), "\n"));
  }
  return c;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseGatewayConfig(*text, path);
}

}  // namespace gateway
}  // namespace mesh
