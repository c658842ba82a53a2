#include "mesh/policy/authorization.h"

#include "absl/strings/match.h"
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
                                  absl::string_view service) {
  Authorizer a;
  const config::Service* s = config.FindByName(service);
  if (s == nullptr || !s->authorization.set) {
    a.rules_.push_back(
        {{absl::StrCat("spiffe://", config.trust_domain, "/*")}, {}});
    return a;
  }
  for (const config::AuthorizationRule& r : s->authorization.allow) {
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

}  // namespace policy
}  // namespace mesh
