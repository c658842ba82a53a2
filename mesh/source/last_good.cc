#include "mesh/source/last_good.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "mesh/config/config.h"
#include "mesh/config/snapshot.h"

namespace mesh {
namespace source {
namespace {

constexpr char kMagic[] = "# mesh last-good v1";

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

}  // namespace

std::string LastGoodPath(const std::string& state_dir) {
  return state_dir + "/last-good.yaml";
}

absl::Status SaveLastGood(const std::string& state_dir,
                          const std::string& text, const std::string& version,
                          absl::Time now) {
  if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Errno(state_dir);
  }
  const std::string path = LastGoodPath(state_dir);
  const std::string tmp = path + ".tmp";
  const std::string data =
      absl::StrCat(kMagic, " sha256=", config::Sha256Hex(text),
                   " version=", version, " saved=", absl::ToUnixSeconds(now),
                   "\n", text);
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      0600);
  if (fd < 0) return Errno(tmp);
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const absl::Status st = Errno(tmp);
      close(fd);
      unlink(tmp.c_str());
      return st;
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    const absl::Status st = Errno(tmp);
    close(fd);
    unlink(tmp.c_str());
    return st;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const absl::Status st = Errno(path);
    unlink(tmp.c_str());
    return st;
  }
  // The rename itself survives a crash once the directory is synced.
  const int dfd = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<LastGood> LoadLastGood(const std::string& state_dir) {
  const std::string path = LastGoodPath(state_dir);
  absl::StatusOr<std::string> data =
      config::ReadFileToString(path, config::kMaxConfigBytes + 4096);
  if (!data.ok()) {
    if (data.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat(path, ": no last-good config"));
    }
    return data.status();
  }
  auto corrupt = [&path](const std::string& why) {
    return absl::DataLossError(absl::StrCat(
        path, ": the last-known-good config is corrupt (", why, "); ignored"));
  };
  const size_t nl = data->find('\n');
  if (nl == std::string::npos || data->compare(0, strlen(kMagic), kMagic) != 0) {
    return corrupt("no header line");
  }
  const std::string header = data->substr(0, nl);
  LastGood lg;
  lg.text = data->substr(nl + 1);
  std::string sha;
  int64_t saved = 0;
  for (absl::string_view field : absl::StrSplit(header, ' ')) {
    if (absl::ConsumePrefix(&field, "sha256=")) sha = std::string(field);
    if (absl::ConsumePrefix(&field, "version=")) lg.version = std::string(field);
    if (absl::ConsumePrefix(&field, "saved=")) {
      (void)absl::SimpleAtoi(field, &saved);
    }
  }
  if (sha.size() != 64) return corrupt("no checksum in the header");
  if (config::Sha256Hex(lg.text) != sha) return corrupt("checksum mismatch");
  lg.saved = absl::FromUnixSeconds(saved);
  return lg;
}

}  // namespace source
}  // namespace mesh
