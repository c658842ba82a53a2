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
