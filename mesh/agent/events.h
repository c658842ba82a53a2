// File: mesh/agent/events.h
//
// The agent reports to the application over a pipe, one event per line:
//   KIND VERSION TEXT
// with TEXT C-escaped so that multi-line validation reports stay on one line.

#ifndef MESH_AGENT_EVENTS_H_
#define MESH_AGENT_EVENTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mesh {
namespace agent {

enum class EventKind {
  kReady,     // Serving; VERSION is the first snapshot's.
  kApplied,   // A new snapshot is served.
  kRejected,  // A config failed validation; TEXT is the report. Kept old.
  kError,     // Any other problem (e.g. the file cannot be read).
  kNack,      // The xDS client rejected VERSION; TEXT is "TYPE: message".
  kHealth,    // An active health check changed an endpoint; TEXT says how.
  kExplain,   // For VERSION, TEXT = "HOSTNAME\n" + its plan's explanation.
  kSynced,    // The xDS client has applied VERSION completely.
  kIdentity,  // Identity files (re)loaded; TEXT = "ID SERIAL NOT_AFTER".
  kAuthz,     // For config VERSION, TEXT = the application's policy
              // (policy::Authorizer::Encode).
  kConfig,    // Config VERSION is in force; TEXT = the file's text.
  kPlan,      // For VERSION, TEXT = "HOSTNAME\nPLAN_JSON\n" then one line
              // "ADDRESS:PORT PRIORITY SHARE LOCALITY" per endpoint in the
              // plan (SHARE: its locality's percent of the priority)
              // and one "excluded ENDPOINT (REASON)" per endpoint left out.
  kLoad,      // A load report: TEXT = "HOSTNAME\n" then one line
              // "LOCALITY SUCCEEDED FAILED ISSUED" per locality, counts of
              // call attempts since the previous report, and "dropped N"
              // for calls failed without being sent (circuit breaker).
  kStale,     // The source could not give a valid config at start: VERSION
              // (the last-known-good copy, saved at the time in TEXT's
              // first line) is served; TEXT's other lines say why.
  kFresh,     // The source answered again: the running config is current.
  kSource,    // A config source's state (EncodeSourceStatus).
  kRegistration,  // Registration state (registrar.h EncodeRegistrations).
  kInstances,     // Where each service's endpoints come from, and the
                  // instances left out or held (EncodeInstances).
};

struct Event {
  EventKind kind = EventKind::kError;
  std::string version;
  std::string text;
};

// A config source's state, as kSource's TEXT.
struct SourceState {
  std::string name;  // "file", "etcd", "dns"
  bool ok = false;
  std::string where;
  std::string version;
  int64_t last_success_ms = -1;  // Unix milliseconds; -1 = never.
  int64_t last_error_ms = -1;
  std::string last_error;
};
std::string EncodeSourceState(const SourceState& s);
absl::StatusOr<SourceState> DecodeSourceState(absl::string_view text);

// Each service's endpoints by origin, and the registered instances the
// composer left out or the mass-removal guard holds, as kInstances' TEXT.
struct InstancesState {
  struct Service {
    std::string name;  // "namespace/name"
    int declared = 0, endpoint_set = 0, dns = 0, registered = 0, held = 0;
  };
  std::vector<Service> services;
  std::vector<std::string> ignored;  // "KEY: ignored: why", one per line.
  std::vector<std::string> held;     // "KEY: why".
  bool operator==(const InstancesState& o) const;
};
std::string EncodeInstances(const InstancesState& s);
absl::StatusOr<InstancesState> DecodeInstances(absl::string_view text);

std::string EncodeEvent(const Event& e);  // Ends with '\n'.
absl::StatusOr<Event> DecodeEvent(absl::string_view line);  // Without '\n'.

}  // namespace agent
}  // namespace mesh

#endif  // MESH_AGENT_EVENTS_H_
