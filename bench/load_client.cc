// load_client: a closed-loop load generator for one gRPC target, so that a
// script can compare paths (direct, through nginx, through the gateway)
// with the same client. Plaintext; SayHello with a payload of N bytes.
//
//   load_client --target=127.0.0.1:8080 [--authority=api.example.test]
//       [--calls=20000] [--inflight=1] [--payload=1024] [--warmup=500]
//
// Prints one line: "p50_us=... p99_us=... qps=... cpu_us_per_call=...
// failed=N". Bounded by --calls (and a 10 s deadline per call).

#include <iostream>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "closed_loop.h"

int main(int argc, char** argv) {
  std::string target, authority;
  int calls = 20000, inflight = 1, payload = 1024, warmup = 500;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    bool ok = true;
    if (absl::ConsumePrefix(&a, "--target=")) {
      target = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--authority=")) {
      authority = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--calls=")) {
      ok = absl::SimpleAtoi(a, &calls) && calls > 0;
    } else if (absl::ConsumePrefix(&a, "--inflight=")) {
      ok = absl::SimpleAtoi(a, &inflight) && inflight > 0;
    } else if (absl::ConsumePrefix(&a, "--payload=")) {
      ok = absl::SimpleAtoi(a, &payload) && payload >= 0;
    } else if (absl::ConsumePrefix(&a, "--warmup=")) {
      ok = absl::SimpleAtoi(a, &warmup) && warmup >= 0;
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "load_client: bad flag " << argv[i] << "\n";
      return 2;
    }
  }
  if (target.empty()) {
    std::cerr << "usage: load_client --target=HOST:PORT [--authority=NAME] "
                 "[--calls=N] [--inflight=N] [--payload=BYTES] "
                 "[--warmup=N]\n";
    return 2;
  }
  grpc::ChannelArguments args;
  if (!authority.empty()) args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
  auto stub = mesh::examples::Greeter::NewStub(grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), args));
  if (warmup > 0) mesh::bench::Run(stub.get(), warmup, inflight, payload);
  const mesh::bench::Result r =
      mesh::bench::Run(stub.get(), calls, inflight, payload);
  std::cout << "p50_us=" << r.p50_us << " p99_us=" << r.p99_us
            << " qps=" << r.qps << " cpu_us_per_call=" << r.cpu_us_per_call
            << " failed=" << r.failed << std::endl;
  return r.failed == 0 ? 0 : 1;
}
