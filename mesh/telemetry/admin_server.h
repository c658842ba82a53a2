// File: mesh/telemetry/admin_server.h
//
// A minimal HTTP/1.1 server for the mesh admin endpoint: GET only, one
// request per connection, served one connection at a time on its own thread
// (admin traffic is a person or a scraper; a client that stalls is cut off
// after 2 s). It binds loopback (or a unix socket) unless told otherwise.

#ifndef MESH_TELEMETRY_ADMIN_SERVER_H_
#define MESH_TELEMETRY_ADMIN_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace mesh {
namespace telemetry {

class AdminServer {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  // Called with the path ("/metrics") and the query ("format=text" or "").
  using Handler =
      std::function<Response(const std::string& path, const std::string& query)>;

  // `address`: "HOST:PORT" (an IPv4 or bracketed IPv6 literal, or
  // "localhost"; port 0 picks one) or "unix:PATH". A HOST that is not
  // loopback is refused unless `allow_remote`.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(
      const std::string& address, bool allow_remote, Handler handler);
  ~AdminServer();

  // Where it listens, with the port resolved ("127.0.0.1:40123",
  // "[::1]:9901", "unix:/run/app/admin.sock").
  const std::string& address() const { return address_; }

 private:
  AdminServer(int listen_fd, int stop_fd, std::string address,
              std::string unix_path, Handler handler);
  void Run();
  void Serve(int fd);

  const int listen_fd_;
  const int stop_fd_;
  const std::string address_;
  const std::string unix_path_;
  const Handler handler_;
  std::thread thread_;
};

}  // namespace telemetry
}  // namespace mesh

#endif  // MESH_TELEMETRY_ADMIN_SERVER_H_
