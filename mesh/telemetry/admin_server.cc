#include "mesh/telemetry/admin_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace mesh {
namespace telemetry {

namespace {

constexpr size_t kMaxRequest = 8192;
constexpr int kIoTimeoutMs = 2000;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    default:
      return "Internal Server Error";
  }
}

bool WriteAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, kIoTimeoutMs) <= 0) return false;
    const ssize_t n = send(fd, data.data() + off, data.size() - off,
                           MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& address, bool allow_remote, Handler handler) {
  int fd = -1;
  std::string bound, unix_path;
  absl::string_view rest = address;
  if (absl::ConsumePrefix(&rest, "unix:")) {
    sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    if (rest.empty() || rest.size() >= sizeof(a.sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin address ", address, ": bad unix socket path"));
    }
    memcpy(a.sun_path, rest.data(), rest.size());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(std::string(rest).c_str());  // A stale socket of ours.
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      const std::string err = strerror(errno);
      if (fd >= 0) close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("admin address ", address, ": ", err));
    }
    unix_path = std::string(rest);
    bound = address;
  } else {
    const size_t colon = address.rfind(':');
    uint32_t port = 0;
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(address.substr(colon + 1), &port) || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin address ", address,
          ": expected HOST:PORT (e.g. 127.0.0.1:9901) or unix:PATH"));
    }
    std::string host = address.substr(0, colon);
    if (host == "localhost") host = "127.0.0.1";
    const bool v6 = host.size() >= 2 && host.front() == '[' &&
                    host.back() == ']';
    if (v6) host = host.substr(1, host.size() - 2);
    sockaddr_storage ss = {};
    socklen_t len = 0;
    bool loopback = false;
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(static_cast<uint16_t>(port));
      if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) len = 0;
      else len = sizeof(*a);
      loopback = len != 0 && IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(static_cast<uint16_t>(port));
      if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) len = 0;
      else len = sizeof(*a);
      loopback = len != 0 && (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (len == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin address ", address,
          ": the host must be an IP literal or \"localhost\""));
    }
    if (!loopback && !allow_remote) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin address ", address,
          " is not a loopback address: the admin endpoint shows the mesh's "
          "config, topology and identity; bind 127.0.0.1, [::1] or a unix "
          "socket, or set MeshOptions::admin_allow_remote to expose it"));
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      const std::string err = strerror(errno);
      if (fd >= 0) close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat("admin address ", address, ": ", err));
    }
    const int actual = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    bound = absl::StrCat(v6 ? "[" + host + "]" : host, ":", actual);
  }
  if (listen(fd, 16) != 0) {
    const std::string err = strerror(errno);
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("admin address ", address, ": listen: ", err));
  }
  const int stop = eventfd(0, EFD_CLOEXEC);
  std::unique_ptr<AdminServer> s(
      new AdminServer(fd, stop, bound, unix_path, std::move(handler)));
  s->thread_ = std::thread([p = s.get()] { p->Run(); });
  return s;
}

AdminServer::AdminServer(int listen_fd, int stop_fd, std::string address,
                         std::string unix_path, Handler handler)
    : listen_fd_(listen_fd),
      stop_fd_(stop_fd),
      address_(std::move(address)),
      unix_path_(std::move(unix_path)),
      handler_(std::move(handler)) {}

AdminServer::~AdminServer() {
  const uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(stop_fd_);
  if (!unix_path_.empty()) unlink(unix_path_.c_str());
}

void AdminServer::Run() {
  while (true) {
    struct pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int r = poll(p, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (p[1].revents & POLLIN)) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Serve(fd);
    close(fd);
  }
}

void AdminServer::Serve(int fd) {
  // Read the request head (up to kMaxRequest bytes, kIoTimeoutMs in all).
  std::string req;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(kIoTimeoutMs);
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < kMaxRequest) {
    const int left =
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    struct pollfd p = {fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, left) <= 0) return;
    char buf[2048];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  Response resp;
  const size_t eol = req.find("\r\n");
  const std::string line = req.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  bool head = false;
  if (eol == std::string::npos || sp1 == std::string::npos ||
      sp2 == std::string::npos) {
    resp = {400, "text/plain; charset=utf-8", "bad request\n"};
  } else {
    const std::string method = line.substr(0, sp1);
    std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    head = method == "HEAD";
    if (method != "GET" && !head) {
      resp = {405, "text/plain; charset=utf-8", "only GET\n"};
    } else {
      const size_t q = target.find('?');
      const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
      if (q != std::string::npos) target.resize(q);
      resp = handler_(target, query);
    }
  }
  const std::string out = absl::StrCat(
      "HTTP/1.1 ", resp.status, " ", Reason(resp.status),
      "\r\nContent-Type: ", resp.content_type,
      "\r\nContent-Length: ", resp.body.size(),
      "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
      head ? "" : resp.body);
  WriteAll(fd, out);
}

}  // namespace telemetry
}  // namespace mesh
