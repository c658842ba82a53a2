// File: tests/temp_dir.h
//
// A private (0700) directory under /tmp, removed with its contents when the
// object goes away. Under /tmp rather than $TEST_TMPDIR because unix socket
// paths must stay short (108 bytes), and Bazel's sandbox paths are long.

#ifndef TESTS_TEMP_DIR_H_
#define TESTS_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace mesh {
namespace testing {

class TempDir final {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Empty if the directory could not be created.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_TEMP_DIR_H_
