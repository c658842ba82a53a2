// File: tests/free_port.h
//
// A free loopback TCP port, for servers that need a fixed port (gRPC's xDS
// server cannot listen on port 0). The kernel picks it; another process
// could take it before the caller binds, which loopback tests accept.

#ifndef TESTS_FREE_PORT_H_
#define TESTS_FREE_PORT_H_

#include <mutex>
#include <set>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mesh {
namespace testing {

// Whether `port` (0: any) can be bound on 127.0.0.1 for `type`; the port
// bound, or 0.
inline int BindLoopback(int type, int port) {
  int fd = socket(AF_INET, type, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(a);
  int got = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    got = ntohs(a.sin_port);
  }
  close(fd);
  return got;
}

// A free TCP port on 127.0.0.1 (with `udp`, free for UDP and TCP both, as a
// DNS server needs), and never one this process was given before: the
// kernel may hand a just-released port out again, and a test that asks for
// several ports before anything listens on them (an etcd cluster: three
// per member) must get distinct ones. 0 if none could be found.
inline int FreePort(bool udp = false) {
  static std::mutex mu;
  static std::set<int> given;
  std::lock_guard<std::mutex> lock(mu);
  for (int i = 0; i < 50; ++i) {
    int port = BindLoopback(udp ? SOCK_DGRAM : SOCK_STREAM, 0);
    if (port != 0 && udp && BindLoopback(SOCK_STREAM, port) != port) port = 0;
    if (port != 0 && given.insert(port).second) return port;
  }
  return 0;
}

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_FREE_PORT_H_
