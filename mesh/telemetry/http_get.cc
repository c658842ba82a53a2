#include "mesh/telemetry/http_get.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mesh {
namespace telemetry {

absl::StatusOr<HttpResponse> HttpRequest(const std::string& address,
                                         const std::string& method,
                                         const std::string& path) {
  int fd = -1;
  absl::string_view rest = address;
  if (absl::ConsumePrefix(&rest, "unix:")) {
    sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    if (rest.size() >= sizeof(a.sun_path)) {
      return absl::InvalidArgumentError("unix socket path too long");
    }
    memcpy(a.sun_path, rest.data(), rest.size());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      const std::string err = strerror(errno);
      close(fd);
      return absl::UnavailableError(err);
    }
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError("expected HOST:PORT or unix:PATH");
    }
    std::string host = address.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    addrinfo hints = {};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), address.substr(colon + 1).c_str(), &hints,
                    &res) != 0 || res == nullptr) {
      return absl::InvalidArgumentError("cannot resolve " + host);
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0) {
      const std::string err = strerror(errno);
      close(fd);
      return absl::UnavailableError(err);
    }
  }
  timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string req = absl::StrCat(method, " ", path,
                                       " HTTP/1.1\r\nHost: mesh-admin\r\n"
                                       "Connection: close\r\n\r\n");
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(req.size())) {
    close(fd);
    return absl::UnavailableError("cannot send the request");
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) resp.append(buf, n);
  close(fd);
  const size_t body = resp.find("\r\n\r\n");
  HttpResponse out;
  if (!absl::StartsWith(resp, "HTTP/1.1 ") || body == std::string::npos ||
      !absl::SimpleAtoi(resp.substr(9, 3), &out.status)) {
    return absl::UnavailableError(absl::StrCat(
        "not an HTTP answer: ", resp.substr(0, resp.find('\r'))));
  }
  out.head = resp.substr(0, body);
  out.body = resp.substr(body + 4);
  return out;
}

absl::StatusOr<std::string> HttpGet(const std::string& address,
                                    const std::string& path) {
  absl::StatusOr<HttpResponse> r = HttpRequest(address, "GET", path);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::UnavailableError(absl::StrCat(
        "HTTP ", r->status, ": ", r->head.substr(0, r->head.find('\r'))));
  }
  return r->body;
}


}  // namespace telemetry
}  // namespace mesh
