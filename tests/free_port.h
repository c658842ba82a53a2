// File: tests/free_port.h
//
// A free loopback TCP port, for servers that need a fixed port (gRPC's xDS
// server cannot listen on port 0). The kernel picks it; another process
// could take it before the caller binds, which loopback tests accept.

#ifndef TESTS_FREE_PORT_H_
#define TESTS_FREE_PORT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mesh {
namespace testing {

// 0 if none could be found.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_FREE_PORT_H_
