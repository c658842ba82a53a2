// A TCP forwarder on loopback that holds every new connection for a while
// before it passes bytes on: a link whose connection set-up is slow (a far
// region, a loaded server), for tests of connection timeouts.
#ifndef MESH_TESTS_SLOW_PROXY_H_
#define MESH_TESTS_SLOW_PROXY_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "mesh/common/sync.h"

namespace mesh {
namespace testing {

class SlowProxy {
 public:
  // Forwards 127.0.0.1:port() to 127.0.0.1:`upstream_port`; each accepted
  // connection is held `delay` before the first byte goes either way.
  SlowProxy(int upstream_port, absl::Duration delay)
      : upstream_port_(upstream_port), delay_(delay) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (listen_fd_ < 0 ||
        bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~SlowProxy() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    internal::MutexLock l(&mu_);
    for (std::thread& t : connections_) t.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  SlowProxy(const SlowProxy&) = delete;
  SlowProxy& operator=(const SlowProxy&) = delete;

  int port() const { return port_; }  // 0: the proxy could not listen.
  int accepted() const { return accepted_; }

 private:
  void Accept() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      internal::MutexLock l(&mu_);
      connections_.emplace_back([this, fd] { Forward(fd); });
    }
  }

  void Forward(int client) {
    const absl::Time start = absl::Now();
    while (!stop_ && absl::Now() - start < delay_) {
      absl::SleepFor(absl::Milliseconds(10));  // Interruptible hold.
    }
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(upstream_port_);
    if (!stop_ && upstream >= 0 &&
        connect(upstream, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      pollfd p[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
      char buf[16384];
      bool open = true;
      while (open && !stop_) {
        if (poll(p, 2, 50) <= 0) continue;
        for (int i = 0; i < 2 && open; ++i) {
          if (p[i].revents == 0) continue;
          const ssize_t n = read(p[i].fd, buf, sizeof(buf));
          open = n > 0 && write(p[1 - i].fd, buf, n) == n;
        }
      }
    }
    if (upstream >= 0) close(upstream);
    close(client);
  }

  const int upstream_port_;
  const absl::Duration delay_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  internal::Mutex mu_;
  std::vector<std::thread> connections_;
};

}  // namespace testing
}  // namespace mesh

#endif  // MESH_TESTS_SLOW_PROXY_H_
