#include "mesh/source/file_watcher.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "mesh/config/config.h"

namespace mesh {
namespace source {

namespace {

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileWatcher>> FileWatcher::Start(
    const std::string& path, const std::string& initial, Callback cb) {
  int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ifd < 0) {
    return absl::InternalError(
        absl::StrCat("inotify_init1: ", strerror(errno)));
  }
  const std::string dir = DirName(path);
  // IN_CLOSE_WRITE: an in-place write finished. IN_MOVED_TO / IN_CREATE: an
  // atomic rename or a new symlink. IN_DELETE / IN_MOVED_FROM: it went away.
  if (inotify_add_watch(ifd, dir.c_str(),
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE |
                            IN_MOVED_FROM | IN_ATTRIB) < 0) {
    const int err = errno;
    close(ifd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot watch directory ", dir, ": ", strerror(err)));
  }
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) {
    close(ifd);
    return absl::InternalError(absl::StrCat("eventfd: ", strerror(errno)));
  }
  std::unique_ptr<FileWatcher> w(
      new FileWatcher(path, ifd, efd, initial, std::move(cb)));
  w->thread_ = std::thread([p = w.get()] { p->Run(); });
  return w;
}

FileWatcher::FileWatcher(std::string path, int inotify_fd, int stop_fd,
                         std::string last, Callback cb)
    : path_(std::move(path)),
      inotify_fd_(inotify_fd),
      stop_fd_(stop_fd),
      last_(std::move(last)),
      cb_(std::move(cb)) {}

FileWatcher::~FileWatcher() {
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  close(inotify_fd_);
  close(stop_fd_);
}

void FileWatcher::Run() {
  alignas(struct inotify_event) char buf[16384];
  while (true) {
    struct pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      cb_(absl::InternalError(absl::StrCat("poll: ", strerror(errno))));
      return;
    }
    if (fds[1].revents) return;
    // Drain every queued event; whatever they were, the answer is to re-read
    // the file once and compare.
    while (read(inotify_fd_, buf, sizeof(buf)) > 0) {
    }
    absl::StatusOr<std::string> data =
        config::ReadFileToString(path_, config::kMaxConfigBytes);
    if (!data.ok()) {
      // Report each distinct error once (a missing file during a rename
      // window is followed by the new file's event).
      if (data.status().ToString() != last_error_) {
        last_error_ = data.status().ToString();
        cb_(data.status());
      }
      continue;
    }
    last_error_.clear();
    if (*data == last_) continue;
    last_ = *data;
    cb_(*std::move(data));
  }
}

}  // namespace source
}  // namespace mesh
