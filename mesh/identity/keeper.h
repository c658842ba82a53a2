// File: mesh/identity/keeper.h
//
// Keeps this workload's identity files valid for gRPC. It reads the SVID
// (certificate chain and key) and the trust bundles named by
// MeshOptions::identity, checks them (svid.h), and writes copies into a
// private directory that gRPC's file_watcher certificate provider reads:
//   OUT/cert.pem   the certificate chain
//   OUT/key.pem    its private key (mode 0600)
//   OUT/bundle.pem every trust bundle, concatenated
// Each file is replaced atomically (write, fsync, rename). It watches the
// sources and repeats this when they change (rotation). Material that fails
// a check is never written: the previous files stay in force and the
// failure is reported; a bad bundle keeps the previous bundle, a bad
// certificate or key the previous pair.
//
// Thread-safety: callbacks run on the keeper's own thread, one at a time.

#ifndef MESH_IDENTITY_KEEPER_H_
#define MESH_IDENTITY_KEEPER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "mesh/common/sync.h"
#include "mesh/identity/svid.h"

namespace mesh {
namespace source {
class FileWatcher;
}
namespace identity {

struct IdentityFiles {
  std::string certificate;              // PEM chain, leaf first.
  std::string private_key;              // PEM key of the leaf.
  std::vector<std::string> trust_bundles;  // PEM CA files (at least one).
};

class Keeper {
 public:
  // Called after each successful load (the first, and every rotation).
  using OnLoaded = std::function<void(const SvidInfo&)>;
  // Called when changed material fails a check (what was kept, and why).
  using OnError = std::function<void(const std::string&)>;

  // Loads and checks the files once, writes them to `out_dir`, then starts
  // watching. Fails (writing nothing) if the first load fails: the SVID
  // rules, a trust domain other than `trust_domain`, unreadable files.
  static absl::StatusOr<std::unique_ptr<Keeper>> Start(
      IdentityFiles files, std::string trust_domain, std::string out_dir,
      OnLoaded on_loaded, OnError on_error);
  ~Keeper();

  // Where gRPC reads the material: `out_dir`/current/{cert,key,bundle}.pem.
  // `current` is a symlink to one complete generation (gen-N/), replaced
  // atomically, so gRPC never pairs a new key with an old certificate
  // (its file watcher reads the two files separately; it notices a swap
  // during its read by the files' modification times, which therefore
  // differ between generations).
  static std::string CertPath(const std::string& out_dir);
  static std::string KeyPath(const std::string& out_dir);
  static std::string BundlePath(const std::string& out_dir);
  // Removes every generation, the link and `out_dir` itself.
  static void RemoveFiles(const std::string& out_dir);

 private:
  Keeper(IdentityFiles files, std::string trust_domain, std::string out_dir,
         OnLoaded on_loaded, OnError on_error);
  // Reads, checks and writes; returns what failed ("" if all went well).
  std::string Reload(bool first);
  void Run();

  const IdentityFiles files_;
  const std::string trust_domain_;
  const std::string out_dir_;
  OnLoaded on_loaded_;
  OnError on_error_;
  // What is in force (written to out_dir_).
  std::string cert_, key_, bundle_;
  int generation_ = 0;  // The last gen-N written.

  internal::Mutex mu_;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<source::FileWatcher>> watchers_;
  std::thread thread_;
};

}  // namespace identity
}  // namespace mesh

#endif  // MESH_IDENTITY_KEEPER_H_
