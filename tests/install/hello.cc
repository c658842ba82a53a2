// A program outside the mesh tree, built against the *installed* mesh (see
// CMakeLists.txt here, or `pkg-config mesh`): it serves an echo method on
// 127.0.0.1:PORT as the mesh service "hello" and calls itself through the
// mesh hostname hello.mesh.internal. Plaintext, so that it needs no
// certificates; everything else is the real path (the agent re-executed
// from this program, xDS, gRPC's xDS client and server).
//
// Usage: hello PORT DIR (DIR: where to write the config). Exit 0 and
// "hello.mesh.internal echoed: hello" on success.

#include <cstdio>
#include <fstream>
#include <string>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <mesh/mesh.h>

// Echoes any method's request (raw bytes: no generated code needed here).
class Echo : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override {
    class Reactor : public grpc::ServerGenericBidiReactor {
     public:
      Reactor() { StartRead(&message_); }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        StartWrite(&message_);
      }
      void OnWriteDone(bool ok) override { StartRead(&message_); }
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer message_;
    };
    return new Reactor;
  }
};

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PORT DIR\n", argv[0]);
    return 2;
  }
  const std::string port = argv[1];
  const std::string config = std::string(argv[2]) + "/mesh.yaml";
  std::ofstream(config) << "apiVersion: mesh/v1\n"
                           "trustDomain: example.org\n"
                           "services:\n"
                           "  - name: hello\n"
                           "    hostname: hello.mesh.internal\n"
                           "    endpoints:\n"
                           "      - {address: 127.0.0.1, port: "
                        << port << ", locality: {region: local}}\n";

  mesh::MeshOptions options;
  options.config_path = config;
  options.service_name = "hello";
  options.plaintext = true;
  options.runtime_dir = argv[2];
  absl::StatusOr<std::unique_ptr<mesh::Mesh>> m =
      mesh::Mesh::Create(std::move(options));
  if (!m.ok()) {
    std::fprintf(stderr, "mesh: %s\n", m.status().ToString().c_str());
    return 1;
  }

  Echo echo;
  std::unique_ptr<grpc::XdsServerBuilder> builder = (*m)->NewServerBuilder();
  builder->AddListeningPort("127.0.0.1:" + port, (*m)->ServerCredentials());
  builder->RegisterCallbackGenericService(&echo);
  std::unique_ptr<grpc::Server> server = builder->BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "the server did not start on 127.0.0.1:%s\n",
                 port.c_str());
    return 1;
  }

  grpc::GenericStub stub((*m)->CreateChannel("hello.mesh.internal"));
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_wait_for_ready(true);  // until the server has its listener
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  grpc::Slice hello("hello");
  grpc::ByteBuffer request(&hello, 1);
  grpc::ByteBuffer reply;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&context, "/hello.Echo/Say", request,
                            &cq);
  call->StartCall();
  call->Finish(&reply, &status, nullptr);
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);

  int code = 1;
  std::vector<grpc::Slice> slices;
  if (!status.ok()) {
    std::fprintf(stderr, "the call failed: %d %s\n", status.error_code(),
                 status.error_message().c_str());
  } else if (reply.Dump(&slices).ok() && slices.size() == 1 &&
             std::string(reinterpret_cast<const char*>(slices[0].begin()),
                         slices[0].size()) == "hello") {
    std::printf("hello.mesh.internal echoed: hello\n");
    code = 0;
  } else {
    std::fprintf(stderr, "unexpected reply (%zu bytes)\n", reply.Length());
  }
  server->Shutdown();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return code;
}
