// File: tests/backend.h
//
// A greeter instance for end-to-end tests: a plain gRPC server on
// 127.0.0.1 (port chosen by the kernel, kept across restarts), serving
// examples::GreeterService, with its YAML endpoint line for a mesh config.

#ifndef TESTS_BACKEND_H_
#define TESTS_BACKEND_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "examples/greeter/greeter_service.h"

namespace mesh {
namespace testing {

// One greeter instance on 127.0.0.1; restartable on the same port.
class Backend {
 public:
  Backend(std::string name, std::string locality)
      : service_(name, locality), locality_(std::move(locality)) {}
  ~Backend() { Stop(); }

  void Start() {
    if (server_) return;
    grpc::ServerBuilder b;
    b.AddListeningPort(absl::StrCat("127.0.0.1:", port_),
                       grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void Stop() {
    if (!server_) return;
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(100));
    server_.reset();
  }
  int port() const { return port_; }
  examples::GreeterService& service() { return service_; }
  // Its grpc.health.v1 status (the port stays open either way).
  void SetServing(bool serving) {
    if (server_) server_->GetHealthCheckService()->SetServingStatus(serving);
  }
  std::string Yaml(const std::string& extra = "") const {
    std::vector<std::string> p = absl::StrSplit(locality_, '/');
    return absl::StrCat("      - {address: 127.0.0.1, port: ", port_, extra,
                        ", locality: {region: ", p[0], ", zone: ", p[1],
                        ", cluster: ", p[2], "}}\n");
  }

 private:
  examples::GreeterService service_;
  const std::string locality_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_BACKEND_H_
