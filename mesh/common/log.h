// File: mesh/common/log.h
//
// The library's log: one line per event on stderr, prefixed with "mesh", the
// severity, the time and the process id, so the lines of the application, of
// its mesh agent and of other processes can be told apart.

#ifndef MESH_COMMON_LOG_H_
#define MESH_COMMON_LOG_H_

#include "absl/strings/string_view.h"

namespace mesh {
namespace internal {

enum LogSeverity { kInfo, kWarning, kError };

// Writes one line (thread-safe; a single write(2)).
void Log(LogSeverity severity, absl::string_view message);

// MESH_LOG_QUIET=1 in the environment hides kInfo lines.
}  // namespace internal
}  // namespace mesh

#endif  // MESH_COMMON_LOG_H_
