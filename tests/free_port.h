// File: tests/free_port.h
//
// A free loopback TCP port, for servers that need a fixed port (gRPC's xDS
// server cannot listen on port 0). Another test could take it before the
// caller binds, which loopback tests accept.

#ifndef TESTS_FREE_PORT_H_
#define TESTS_FREE_PORT_H_

#include <cstdio>
#include <mutex>
#include <random>
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

// The first port of the kernel's ephemeral range (32768 if unreadable).
inline int EphemeralLow() {
  FILE* f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
  int low = 32768;
  if (f != nullptr) {
    if (fscanf(f, "%d", &low) != 1) low = 32768;
    fclose(f);
  }
  return low;
}

// A free TCP port on 127.0.0.1 (with `udp`, free for UDP and TCP both, as a
// DNS server needs), and never one this process was given before: a test
// that asks for several ports before anything listens on them (an etcd
// cluster: three per member) must get distinct ones. Chosen at random
// below the kernel's ephemeral range, never by binding port 0: the kernel
// hands an ephemeral port to the next outgoing connection of any process
// once it is released here, and the caller's own bind (etcd's, the agent's)
// would then fail. 0 if none could be found.
inline int FreePort(bool udp = false) {
  static std::mutex mu;
  static std::set<int> given;
  static std::mt19937 random{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  int high = EphemeralLow() - 1;
  int low = high > 22000 ? 20000 : 1024;
  std::uniform_int_distribution<int> pick(low, high);
  for (int i = 0; i < 1000; ++i) {
    int port = pick(random);
    if (given.count(port) != 0) continue;
    if (BindLoopback(SOCK_STREAM, port) != port) continue;
    if (udp && BindLoopback(SOCK_DGRAM, port) != port) continue;
    given.insert(port);
    return port;
  }
  return 0;
}

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_FREE_PORT_H_
