// Which greeter instance a mesh routes a call to: for tests that change the
// config and watch routing follow.

#ifndef TESTS_SERVED_BY_H_
#define TESTS_SERVED_BY_H_

#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/mesh.h"

namespace mesh {
namespace testing {

// The instance that answers one call to `hostname`, or "error: ...".
inline std::string ServedBy(Mesh& m,
                            const std::string& hostname =
                                "greeter.mesh.internal") {
  auto stub = examples::Greeter::NewStub(m.CreateChannel(hostname));
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::seconds(10));
  examples::HelloReply reply;
  grpc::Status st = stub->SayHello(&ctx, examples::HelloRequest(), &reply);
  return st.ok() ? reply.instance() : "error: " + st.error_message();
}

// Calls until `want` answers (at most 20 s); the last answer.
inline std::string AwaitServedBy(Mesh& m, const std::string& want) {
  const absl::Time end = absl::Now() + absl::Seconds(20);
  std::string got;
  do {
    got = ServedBy(m);
  } while (got != want && absl::Now() < end);
  return got;
}

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_SERVED_BY_H_
