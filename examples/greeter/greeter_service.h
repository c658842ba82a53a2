// File: examples/greeter/greeter_service.h
//
// The Greeter service used by the examples, the tests and the benchmarks.

#ifndef EXAMPLES_GREETER_GREETER_SERVICE_H_
#define EXAMPLES_GREETER_GREETER_SERVICE_H_

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <mutex>
#include <set>
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
    if (request->name() == "metadata") {
      for (const auto& [k, v] : context->client_metadata()) {
        const std::string key(k.data(), k.size());
        if (key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0) {
          continue;
        }
        (*reply->mutable_request_metadata())[key] = std::string(v.data(),
                                                                v.size());
      }
    }
    if (request->name() == "fail") {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "asked to fail");
    }
    // set_fail_percent: this instance fails that share of its calls
    // (every call whose number mod 10 is below percent/10), with INTERNAL
    // (not retried), for outlier-detection tests.
    const int fail = fail_percent_.load(std::memory_order_relaxed);
    if (fail > 0 &&
        static_cast<int>(counted_.fetch_add(1) % 10) < fail / 10) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "failing on purpose");
    }
    if (request->name().rfind("sleep-ms:", 0) == 0) {
      // Answers after that many milliseconds (for timeout tests), or when
      // the call is cancelled.
      const auto until = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(
                             std::atoi(request->name().c_str() + 9));
      while (std::chrono::steady_clock::now() < until &&
             !context->IsCancelled()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (context->IsCancelled()) {
        cancelled_.fetch_add(1);
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
    }
    if (request->name().rfind("fail-once:", 0) == 0) {
      // Once per ID across every instance in this process, so that a retry
      // on another instance succeeds too.
      static std::mutex mu;
      static std::set<std::string>* failed = new std::set<std::string>;
      std::lock_guard<std::mutex> lock(mu);
      if (failed->insert(request->name()).second) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "failing once");
      }
    }
    reply->set_message("hello " + request->name());
    reply->set_instance(instance_);
    reply->set_locality(locality_);
    reply->set_payload(request->payload());
    return grpc::Status::OK;
  }

  grpc::Status SayGoodbye(grpc::ServerContext* context,
                          const HelloRequest* request,
                          HelloReply* reply) override {
    grpc::Status st = SayHello(context, request, reply);
    reply->set_message("goodbye " + request->name());
    return st;
  }

  grpc::Status SayHelloStream(
      grpc::ServerContext* context, const HelloRequest* request,
      grpc::ServerWriter<HelloReply>* writer) override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    for (int i = 0; i < request->count(); ++i) {
      HelloReply reply;
      reply.set_message("hello " + request->name() + " #" +
                        std::to_string(i));
      reply.set_instance(instance_);
      reply.set_locality(locality_);
      if (!writer->Write(reply)) {
        cancelled_.fetch_add(1);
        return grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status CollectHellos(grpc::ServerContext* context,
                             grpc::ServerReader<HelloRequest>* reader,
                             HelloReply* reply) override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    HelloRequest request;
    std::string names;
    while (reader->Read(&request)) {
      if (!names.empty()) names += ",";
      names += request.name();
    }
    if (context->IsCancelled()) {
      cancelled_.fetch_add(1);
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    reply->set_message("hello " + names);
    reply->set_instance(instance_);
    reply->set_locality(locality_);
    return grpc::Status::OK;
  }

  grpc::Status Chat(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<HelloReply, HelloRequest>* stream) override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    HelloRequest request;
    while (stream->Read(&request)) {
      HelloReply reply;
      reply.set_message("hello " + request.name());
      reply.set_instance(instance_);
      reply.set_locality(locality_);
      reply.set_payload(request.payload());
      if (!stream->Write(reply)) break;
    }
    if (context->IsCancelled()) {
      cancelled_.fetch_add(1);
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    return grpc::Status::OK;
  }

  uint64_t calls() const { return calls_.load(); }
  // Calls that ended because the caller cancelled (or its deadline passed)
  // while the server was still working on them.
  uint64_t cancelled() const { return cancelled_.load(); }
  // SayHello fails `percent` (0, 10, ..., 100) of its calls from now on.
  void set_fail_percent(int percent) { fail_percent_ = percent; }

 private:
  const std::string instance_;
  const std::string locality_;
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> cancelled_{0};
  std::atomic<int> fail_percent_{0};
  std::atomic<uint64_t> counted_{0};
};

}  // namespace examples
}  // namespace mesh

#endif  // EXAMPLES_GREETER_GREETER_SERVICE_H_
