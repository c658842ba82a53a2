#include "mesh/agent/events.h"

#include <vector>

#include "absl/strings/escaping.h"
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
