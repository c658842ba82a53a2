// File: mesh/telemetry/http_get.h
//
// A tiny HTTP/1.1 client for the admin endpoint (meshctl status, tests):
// one request, "Connection: close", 5 s receive timeout.

#ifndef MESH_TELEMETRY_HTTP_GET_H_
#define MESH_TELEMETRY_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"

namespace mesh {
namespace telemetry {

struct HttpResponse {
  int status = 0;
  std::string head;  // Status line and headers.
  std::string body;
};

// `address`: "HOST:PORT" or "unix:PATH".
absl::StatusOr<HttpResponse> HttpRequest(const std::string& address,
                                         const std::string& method,
                                         const std::string& path);

// The body of a 200 answer to GET `path`; anything else is an error.
absl::StatusOr<std::string> HttpGet(const std::string& address,
                                    const std::string& path);

}  // namespace telemetry
}  // namespace mesh

#endif  // MESH_TELEMETRY_HTTP_GET_H_
