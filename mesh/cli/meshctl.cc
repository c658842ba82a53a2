// meshctl: the mesh command-line tool.
//
//   meshctl validate FILE...   check config files; exit 0 if all are valid
//                              (one summary line each on stdout), 1 if any
//                              is not (every problem on stderr), 2 on bad
//                              usage.
//
// It never crashes on any input: every file goes through the same validating
// loader as the library, which turns all problems into messages.

#include <stdlib.h>

#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "mesh/config/config.h"
#include "mesh/config/snapshot.h"

namespace {

constexpr char kUsage[] =
    "usage: meshctl validate FILE...\n"
    "\n"
    "  validate FILE...  check mesh config files (schema mesh/v1, see\n"
    "                    docs/config.md); exit 0 if all are valid, 1 if not\n";

int Validate(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "meshctl validate: no files given\n" << kUsage;
    return 2;
  }
  int bad = 0;
  // Under `bazel run`, the working directory is the runfiles tree; resolve
  // relative paths against the directory the user ran bazel from.
  const char* cwd = getenv("BUILD_WORKING_DIRECTORY");
  for (int i = 2; i < argc; ++i) {
    std::string path = argv[i];
    if (cwd != nullptr && !path.empty() && path[0] != '/') {
      path = std::string(cwd) + "/" + path;
    }
    absl::StatusOr<std::string> data =
        mesh::config::ReadFileToString(path, mesh::config::kMaxConfigBytes);
    if (!data.ok()) {
      std::cerr << data.status().message() << "\n";
      ++bad;
      continue;
    }
    auto snap = mesh::config::MakeSnapshot(*data, path);
    if (!snap.ok()) {
      std::cerr << snap.status().message() << "\n";
      ++bad;
      continue;
    }
    const mesh::config::MeshConfig& c = *(*snap)->config;
    size_t endpoints = 0;
    for (const auto& s : c.services) endpoints += s.endpoints.size();
    std::cout << path << ": valid (version " << (*snap)->version
              << ", trust domain " << c.trust_domain << ", "
              << c.services.size() << " service(s), " << endpoints
              << " endpoint(s))\n";
  }
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" ||
      std::string(argv[1]) == "help") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "validate") return Validate(argc, argv);
  std::cerr << "meshctl: unknown command \"" << cmd << "\"\n" << kUsage;
  return 2;
}
