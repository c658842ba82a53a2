// File: mesh/source/file_watcher.h
//
// Watches one file and reports its contents whenever they change. It watches
// the file's *directory* with inotify, not the file: an atomic rename replaces
// the inode, and Kubernetes ConfigMaps swap a "..data" symlink; both show up
// as directory events. Any relevant event (or an inotify queue overflow)
// re-reads the file; unchanged bytes are not reported again. In-place writes
// are reported on close, so a half-written file is not read on purpose.
//
// Thread-safety: the callbacks run on the watcher's own thread, one at a
// time. Destroying the watcher stops and joins that thread.

#ifndef MESH_SOURCE_FILE_WATCHER_H_
#define MESH_SOURCE_FILE_WATCHER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mesh {
namespace source {

class FileWatcher final {
 public:
  // Called with the new contents, or with the error reading the file.
  using Callback = std::function<void(absl::StatusOr<std::string> contents)>;

  // Starts watching `path`. `initial` is the content already read by the
  // caller (not reported again). Fails if the directory cannot be watched.
  static absl::StatusOr<std::unique_ptr<FileWatcher>> Start(
      const std::string& path, const std::string& initial, Callback cb);

  ~FileWatcher();
  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;

 private:
  FileWatcher(std::string path, int inotify_fd, int stop_fd, std::string last,
              Callback cb);
  void Run();

  const std::string path_;
  const int inotify_fd_;
  const int stop_fd_;  // eventfd: written by the destructor.
  std::string last_;   // Only touched by the watcher thread.
  std::string last_error_;
  Callback cb_;
  std::thread thread_;
};

}  // namespace source
}  // namespace mesh

#endif  // MESH_SOURCE_FILE_WATCHER_H_
