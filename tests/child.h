// File: tests/child.h
//
// A child process for end-to-end tests: started with execv, stdout
// optionally captured, killed (SIGTERM) and reaped on destruction.

#ifndef TESTS_CHILD_H_
#define TESTS_CHILD_H_

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mesh {
namespace testing {

class Child {
 public:
  explicit Child(std::vector<std::string> args, bool capture = false) {
    int out[2] = {-1, -1};
    if (capture && pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      if (capture) dup2(out[1], 1);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (capture) {
      close(out[1]);
      out_fd_ = out[0];
    }
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // Reads stdout until it contains `needle` (true), or EOF or `timeout`
  // (false). Everything read so far is in output().
  bool ReadUntil(const std::string& needle, absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    while (!absl::StrContains(output_, needle)) {
      const int64_t ms = absl::ToInt64Milliseconds(end - absl::Now());
      if (ms <= 0) return false;
      pollfd p = {out_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(ms)) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(out_fd_, buf, sizeof(buf));
      if (n <= 0) return false;
      output_.append(buf, n);
    }
    return true;
  }
  // Reads what stdout brings within `timeout` (returns after the first
  // chunk); false at EOF.
  bool ReadSome(absl::Duration timeout) {
    pollfd p = {out_fd_, POLLIN, 0};
    const int64_t ms = absl::ToInt64Milliseconds(timeout);
    if (poll(&p, 1, static_cast<int>(ms)) <= 0) return true;
    char buf[4096];
    const ssize_t n = read(out_fd_, buf, sizeof(buf));
    if (n <= 0) return false;
    output_.append(buf, n);
    return true;
  }
  const std::string& output() const { return output_; }

  // Sends `signal` (unless 0), reads stdout to EOF and waits; returns all
  // of stdout.
  std::string Finish(int* exit_code, int signal = 0) {
    if (signal != 0 && pid_ > 0) kill(pid_, signal);
    char buf[4096];
    ssize_t n;
    while (out_fd_ >= 0 && (n = read(out_fd_, buf, sizeof(buf))) > 0) {
      output_.append(buf, n);
    }
    int ws = 0;
    waitpid(pid_, &ws, 0);
    pid_ = -1;
    *exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return output_;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string output_;
};

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_CHILD_H_
