// outside_client: a client outside the mesh (no mesh library) calling
// through the gateway over TLS with an API key, in batches; prints for each
// batch how many calls succeeded and which localities served them.
//
//   outside_client --gateway=127.0.0.1:8443 --authority=api.example.test
//       --ca=ca.pem --api_key=KEY --batches=40 --batch_size=20  (or --bearer=JWT)
//       --interval_ms=100
//
// --ca: the CA that signed the gateway's certificate (omit with
// --plaintext). Ends after --batches batches; exits 1 if any call failed.

#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "examples/greeter/greeter.grpc.pb.h"

namespace {

bool Flag(absl::string_view arg, absl::string_view name, std::string* out) {
  if (!absl::ConsumePrefix(&arg, name)) return false;
  *out = std::string(arg);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string gateway, authority, ca, api_key, bearer;
  std::string batches_s = "10", size_s = "20", interval_s = "100";
  bool plaintext = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--plaintext") {
      plaintext = true;
    } else if (!Flag(argv[i], "--gateway=", &gateway) &&
               !Flag(argv[i], "--authority=", &authority) &&
               !Flag(argv[i], "--ca=", &ca) &&
               !Flag(argv[i], "--api_key=", &api_key) &&
               !Flag(argv[i], "--bearer=", &bearer) &&
               !Flag(argv[i], "--batches=", &batches_s) &&
               !Flag(argv[i], "--batch_size=", &size_s) &&
               !Flag(argv[i], "--interval_ms=", &interval_s)) {
      std::cerr << "outside_client: unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  int batches = 0, size = 0, interval_ms = 0;
  if (gateway.empty() || (ca.empty() && !plaintext) ||
      !absl::SimpleAtoi(batches_s, &batches) || batches <= 0 ||
      !absl::SimpleAtoi(size_s, &size) || size <= 0 ||
      !absl::SimpleAtoi(interval_s, &interval_ms) || interval_ms < 0) {
    std::cerr << "usage: outside_client --gateway=HOST:PORT "
                 "[--authority=NAME] (--ca=FILE | --plaintext) "
                 "[--api_key=KEY] [--bearer=JWT] [--batches=N] "
                 "[--batch_size=N] "
                 "[--interval_ms=N]\n";
    return 2;
  }
  grpc::ChannelArguments args;
  if (!authority.empty()) args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (plaintext) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    std::ifstream in(ca);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      std::cerr << "outside_client: cannot read " << ca << "\n";
      return 1;
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    creds = grpc::SslCredentials(ssl);
  }
  auto stub = mesh::examples::Greeter::NewStub(
      grpc::CreateCustomChannel(gateway, creds, args));
  uint64_t total = 0, failed = 0;
  for (int b = 1; b <= batches; ++b) {
    std::map<std::string, int> served, errors;
    for (int i = 0; i < size; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
      if (!api_key.empty()) ctx.AddMetadata("x-api-key", api_key);
      if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
      mesh::examples::HelloRequest req;
      req.set_name("outside");
      mesh::examples::HelloReply reply;
      grpc::Status st = stub->SayHello(&ctx, req, &reply);
      ++total;
      if (st.ok()) {
        ++served[reply.locality()];
      } else {
        ++failed;
        ++errors[absl::StrCat(st.error_code(), " ", st.error_message())];
      }
    }
    std::string line = absl::StrCat(
        "batch ", b, ": ", size, " calls; served by ",
        absl::StrJoin(served, ", ", absl::PairFormatter("=")));
    if (!errors.empty()) {
      absl::StrAppend(&line, "; FAILED: ",
                      absl::StrJoin(errors, ", ", absl::PairFormatter(" x")));
    }
    std::cout << line << std::endl;
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
  std::cout << "total: " << total << " calls, " << failed << " failed"
            << std::endl;
  return failed == 0 ? 0 : 1;
}
