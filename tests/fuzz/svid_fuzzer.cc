// libFuzzer target: the certificate identity parser (mesh/identity/svid.h).
// The input is split at the first NUL into (certificate chain, key +
// bundle); every function must end in a value or a clear error, never a
// crash, leak or UB. Run by tests/fuzz/run.sh.

#include <cstddef>
#include <cstdint>
#include <string>

#include "mesh/identity/svid.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string cert = in.substr(0, nul);
  const std::string rest = nul == std::string::npos ? "" : in.substr(nul + 1);
  auto id = mesh::identity::ParseSpiffeId(cert);
  if (!id.ok() && id.status().message().empty()) __builtin_trap();
  if (id.ok() && mesh::identity::ParseSpiffeId(id->ToString())->ToString() !=
                     id->ToString()) {
    __builtin_trap();  // Parsing what we print gives the same ID.
  }
  auto peer = mesh::identity::PeerSvid(cert);
  if (!peer.ok() && peer.status().message().empty()) __builtin_trap();
  auto svid = mesh::identity::CheckSvid(cert, rest, rest, 1800000000);
  if (!svid.ok() && svid.status().message().empty()) __builtin_trap();
  auto bundle = mesh::identity::CheckBundle(rest);
  if (!bundle.ok() && bundle.status().message().empty()) __builtin_trap();
  return 0;
}
