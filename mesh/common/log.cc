#include "mesh/common/log.h"

#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mesh {
namespace internal {

void Log(LogSeverity severity, absl::string_view message) {
  static const bool quiet = [] {
    const char* q = getenv("MESH_LOG_QUIET");
    return q != nullptr && q[0] == '1';
  }();
  if (quiet && severity == kInfo) return;
  const char sev = severity == kInfo ? 'I' : severity == kWarning ? 'W' : 'E';
  std::string line = absl::StrCat(
      "mesh ", std::string(1, sev), " ",
      absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::UTCTimeZone()), " [",
      getpid(), "] ", message, "\n");
  (void)!write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace internal
}  // namespace mesh
