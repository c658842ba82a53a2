#include "mesh/agent/events.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mesh {
namespace agent {

namespace {
constexpr std::pair<EventKind, absl::string_view> kNames[] = {
    {EventKind::kReady, "ready"},     {EventKind::kApplied, "applied"},
    {EventKind::kRejected, "rejected"}, {EventKind::kError, "error"},
    {EventKind::kNack, "nack"},
    {EventKind::kHealth, "health"},   {EventKind::kExplain, "explain"},
    {EventKind::kSynced, "synced"},   {EventKind::kIdentity, "identity"},
    {EventKind::kAuthz, "authz"},     {EventKind::kConfig, "config"},
    {EventKind::kPlan, "plan"},       {EventKind::kLoad, "load"},
    {EventKind::kStale, "stale"},     {EventKind::kFresh, "fresh"},
    {EventKind::kSource, "source"},
    {EventKind::kRegistration, "registration"},
    {EventKind::kInstances, "instances"},
};
}  // namespace

std::string EncodeEvent(const Event& e) {
  absl::string_view kind = "error";
  for (const auto& [k, name] : kNames) {
    if (k == e.kind) kind = name;
  }
  return absl::StrCat(kind, " ", e.version.empty() ? "-" : e.version, " ",
                      absl::CEscape(e.text), "\n");
}

std::string EncodeSourceState(const SourceState& s) {
  return absl::StrCat(s.name, "\n", s.ok ? "ok" : "error", "\n", s.where, "\n",
                      s.version, "\n", s.last_success_ms, "\n",
                      s.last_error_ms, "\n", s.last_error);
}

absl::StatusOr<SourceState> DecodeSourceState(absl::string_view text) {
  std::vector<std::string> f = absl::StrSplit(text, absl::MaxSplits('\n', 6));
  SourceState s;
  if (f.size() != 7 || !absl::SimpleAtoi(f[4], &s.last_success_ms) ||
      !absl::SimpleAtoi(f[5], &s.last_error_ms)) {
    return absl::InvalidArgumentError("malformed source event");
  }
  s.name = f[0];
  s.ok = f[1] == "ok";
  s.where = f[2];
  s.version = f[3];
  s.last_error = f[6];
  return s;
}

bool InstancesState::operator==(const InstancesState& o) const {
  return EncodeInstances(*this) == EncodeInstances(o);
}

std::string EncodeInstances(const InstancesState& s) {
  std::string out;
  for (const InstancesState::Service& v : s.services) {
    absl::StrAppend(&out, "service ", v.name, " ", v.declared, " ",
                    v.endpoint_set, " ", v.dns, " ", v.registered, " ", v.held,
                    "\n");
  }
  // (Each line is one line: the composer writes them so.)
  for (const std::string& l : s.ignored) absl::StrAppend(&out, "ignored ", l, "\n");
  for (const std::string& l : s.held) absl::StrAppend(&out, "held ", l, "\n");
  return out;
}

absl::StatusOr<InstancesState> DecodeInstances(absl::string_view text) {
  InstancesState s;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (f.size() == 2 && f[0] == "ignored") {
      s.ignored.emplace_back(f[1]);
    } else if (f.size() == 2 && f[0] == "held") {
      s.held.emplace_back(f[1]);
    } else if (f.size() == 2 && f[0] == "service") {
      std::vector<absl::string_view> n = absl::StrSplit(f[1], ' ');
      InstancesState::Service v;
      if (n.size() != 6 || !absl::SimpleAtoi(n[1], &v.declared) ||
          !absl::SimpleAtoi(n[2], &v.endpoint_set) ||
          !absl::SimpleAtoi(n[3], &v.dns) ||
          !absl::SimpleAtoi(n[4], &v.registered) ||
          !absl::SimpleAtoi(n[5], &v.held)) {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed instances event line: ", line));
      }
      v.name = std::string(n[0]);
      s.services.push_back(std::move(v));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed instances event line: ", line));
    }
  }
  return s;
}

absl::StatusOr<Event> DecodeEvent(absl::string_view line) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(line, absl::MaxSplits(' ', 2));
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed agent event: ", absl::CHexEscape(line)));
  }
  Event e;
  bool known = false;
  for (const auto& [k, name] : kNames) {
    if (name == parts[0]) {
      e.kind = k;
      known = true;
    }
  }
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown agent event: ", absl::CHexEscape(parts[0])));
  }
  e.version = parts[1] == "-" ? "" : std::string(parts[1]);
  std::string err;
  if (!absl::CUnescape(parts[2], &e.text, &err)) {
    return absl::InvalidArgumentError("bad escaping in agent event: " + err);
  }
  return e;
}

}  // namespace agent
}  // namespace mesh
