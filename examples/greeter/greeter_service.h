// File: examples/greeter/greeter_service.h
//
// The Greeter service used by the examples, the tests and the benchmarks.

#ifndef EXAMPLES_GREETER_GREETER_SERVICE_H_
#define EXAMPLES_GREETER_GREETER_SERVICE_H_

#include <atomic>
#include <string>

#include "greeter.grpc.pb.h"

namespace mesh {
namespace examples {

class GreeterService final : public Greeter::Service {
 public:
  GreeterService(std::string instance, std::string locality)
      : instance_(std::move(instance)), locality_(std::move(locality)) {}

  grpc::Status SayHello(grpc::ServerContext* context,
                        const HelloRequest* request,
                        HelloReply* reply) override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    reply->set_message("hello " + request->name());
    reply->set_instance(instance_);
    reply->set_locality(locality_);
    reply->set_payload(request->payload());
    return grpc::Status::OK;
  }

  uint64_t calls() const { return calls_.load(); }

 private:
  const std::string instance_;
  const std::string locality_;
  std::atomic<uint64_t> calls_{0};
};

}  // namespace examples
}  // namespace mesh

#endif  // EXAMPLES_GREETER_GREETER_SERVICE_H_
