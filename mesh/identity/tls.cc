#include "mesh/identity/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/str_cat.h"
#include "mesh/identity/keeper.h"

namespace mesh {
namespace identity {

namespace {

// Runs after gRPC has verified the chain against the trust bundle.
class SpiffeIdVerifier final
    : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit SpiffeIdVerifier(std::string identity)
      : identity_(std::move(identity)) {}
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>,
              grpc::Status* sync_status) override {
    const std::vector<grpc::string_ref> uris = request->uri_names();
    if (uris.size() == 1 &&
        std::string(uris[0].data(), uris[0].size()) == identity_) {
      *sync_status = grpc::Status::OK;
    } else {
      *sync_status = grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          absl::StrCat("the server is not ", identity_));
    }
    return true;  // Decided synchronously.
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*)
      override {}

 private:
  const std::string identity_;
};

}  // namespace

std::function<std::shared_ptr<grpc::ChannelCredentials>(const std::string&)>
MtlsCredentialsFactory(const std::string& keeper_dir) {
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          Keeper::KeyPath(keeper_dir), Keeper::CertPath(keeper_dir),
          Keeper::BundlePath(keeper_dir), /*refresh_interval_sec=*/1);
  return [provider](const std::string& identity) {
    grpc::experimental::TlsChannelCredentialsOptions o;
    o.set_certificate_provider(provider);
    o.watch_root_certs();
    o.watch_identity_key_cert_pairs();
    o.set_check_call_host(false);  // The SPIFFE ID check replaces it.
    o.set_certificate_verifier(
        grpc::experimental::ExternalCertificateVerifier::Create<
            SpiffeIdVerifier>(identity));
    return grpc::experimental::TlsCredentials(o);
  };
}

}  // namespace identity
}  // namespace mesh
