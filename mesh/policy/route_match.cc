#include "mesh/policy/route_match.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace mesh {
namespace policy {

namespace {

bool HeaderMatches(const config::HeaderMatch& h,
                   const std::map<std::string, std::string>& headers) {
  auto it = headers.find(h.name);
  bool m = false;
  switch (h.kind) {
    case config::HeaderMatch::Kind::kExact:
      m = it != headers.end() && it->second == h.value;
      break;
    case config::HeaderMatch::Kind::kPrefix:
      m = it != headers.end() && absl::StartsWith(it->second, h.value);
      break;
    case config::HeaderMatch::Kind::kRegex:
      m = it != headers.end() && RE2::FullMatch(it->second, RE2(h.value));
      break;
    case config::HeaderMatch::Kind::kPresent:
      m = it != headers.end();
      break;
    case config::HeaderMatch::Kind::kAbsent:
      m = it == headers.end();
      break;
  }
  return m != h.invert;
}

}  // namespace

RouteChoice MatchRoute(const config::Service& service,
                       const std::string& method,
                       const std::map<std::string, std::string>& headers,
                       const config::CallerInfo& caller) {
  RouteChoice choice;
  for (const config::Route& r : service.routes) {
    const config::RouteMatch& m = r.match;
    if (!m.source.Matches(caller)) continue;
    if (!m.method.empty() && m.method != method) continue;
    if (m.method.empty() && !absl::StartsWith(method, m.prefix)) continue;
    bool all = true;
    for (const config::HeaderMatch& h : m.headers) {
      all = all && HeaderMatches(h, headers);
    }
    if (!all) continue;
    if (m.percent < 100) {
      choice.maybe.push_back(
          absl::StrCat(r.name, " (", m.percent, "% of calls)"));
      continue;
    }
    choice.route = &r;
    return choice;
  }
  return choice;
}

}  // namespace policy
}  // namespace mesh
