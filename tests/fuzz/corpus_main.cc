// Runs a libFuzzer target over files, without libFuzzer: every file in the
// directories given as arguments is one input. Built by Bazel with the
// project's compiler, so each fuzzer's committed corpus is also a plain
// regression test in `bazel test`, and a fuzzer that no longer builds or
// links fails there, before tests/fuzz/run.sh runs it with clang.

#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    DIR* d = opendir(argv[i]);
    if (d == nullptr) {
      std::fprintf(stderr, "cannot open %s\n", argv[i]);
      return 1;
    }
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const std::string path = std::string(argv[i]) + "/" + e->d_name;
      std::ifstream f(path, std::ios::binary);
      if (!f) continue;  // A subdirectory.
      std::stringstream s;
      s << f.rdbuf();
      const std::string data = s.str();
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()),
                             data.size());
      ++files;
    }
    closedir(d);
  }
  std::printf("%d inputs, no crash\n", files);
  return files > 0 ? 0 : 1;
}
