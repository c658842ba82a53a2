#include "mesh/identity/keeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "mesh/config/config.h"
#include "mesh/source/file_watcher.h"
#include "mesh/common/sync.h"

namespace mesh {
namespace identity {

namespace {

constexpr size_t kMaxFileBytes = 1 << 20;
// Rotation tools replace the certificate and the key one after the other:
// wait for this much quiet before loading, so a half-rotated pair is not
// reported as a mismatch.
constexpr absl::Duration kSettle = absl::Milliseconds(100);

// Write to a temporary file in the same directory, fsync, rename.
absl::Status WriteAtomically(const std::string& path, const std::string& data,
                             mode_t mode) {
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat(tmp, ": ", strerror(errno)));
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat(tmp, ": ", strerror(err)));
    }
    off += static_cast<size_t>(n);
  }
  const bool synced = fsync(fd) == 0;
  close(fd);
  if (!synced || rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": ", strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

constexpr char kCert[] = "cert.pem";
constexpr char kKey[] = "key.pem";
constexpr char kBundle[] = "bundle.pem";

// Removes gen-N directories of `d` other than `keep` (and their files).
void RemoveGenerations(const std::string& d, const std::string& keep1,
                       const std::string& keep2) {
  DIR* dir = opendir(d.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> gone;
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind("gen-", 0) == 0 && name != keep1 && name != keep2) {
      gone.push_back(name);
    }
  }
  closedir(dir);
  for (const std::string& g : gone) {
    for (const char* f : {kCert, kKey, kBundle}) {
      unlink(absl::StrCat(d, "/", g, "/", f).c_str());
      unlink(absl::StrCat(d, "/", g, "/", f, ".tmp").c_str());
    }
    rmdir(absl::StrCat(d, "/", g).c_str());
  }
}

}  // namespace

std::string Keeper::CertPath(const std::string& d) {
  return absl::StrCat(d, "/current/", kCert);
}
std::string Keeper::KeyPath(const std::string& d) {
  return absl::StrCat(d, "/current/", kKey);
}
std::string Keeper::BundlePath(const std::string& d) {
  return absl::StrCat(d, "/current/", kBundle);
}

void Keeper::RemoveFiles(const std::string& d) {
  unlink((d + "/current").c_str());
  unlink((d + "/current.tmp").c_str());
  RemoveGenerations(d, "", "");
  rmdir(d.c_str());
}

Keeper::Keeper(IdentityFiles files, std::string trust_domain,
               std::string out_dir, OnLoaded on_loaded, OnError on_error)
    : files_(std::move(files)),
      trust_domain_(std::move(trust_domain)),
      out_dir_(std::move(out_dir)),
      on_loaded_(std::move(on_loaded)),
      on_error_(std::move(on_error)) {}

absl::StatusOr<std::unique_ptr<Keeper>> Keeper::Start(
    IdentityFiles files, std::string trust_domain, std::string out_dir,
    OnLoaded on_loaded, OnError on_error) {
  if (files.certificate.empty() || files.private_key.empty() ||
      files.trust_bundles.empty()) {
    return absl::InvalidArgumentError(
        "identity: a certificate, a private key and at least one trust "
        "bundle are required");
  }
  std::unique_ptr<Keeper> k(new Keeper(std::move(files),
                                       std::move(trust_domain),
                                       std::move(out_dir),
                                       std::move(on_loaded),
                                       std::move(on_error)));
  const std::string err = k->Reload(/*first=*/true);
  if (!err.empty()) return absl::InvalidArgumentError(err);
  std::vector<std::string> paths = {k->files_.certificate,
                                    k->files_.private_key};
  paths.insert(paths.end(), k->files_.trust_bundles.begin(),
               k->files_.trust_bundles.end());
  Keeper* self = k.get();
  for (const std::string& p : paths) {
    auto w = source::FileWatcher::Start(
        p, "", [self](absl::StatusOr<std::string>) {
          internal::MutexLock lock(&self->mu_);
          self->dirty_ = true;
        });
    if (!w.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("identity: cannot watch ", p, ": ",
                       w.status().message()));
    }
    k->watchers_.push_back(std::move(*w));
  }
  k->thread_ = std::thread([self] { self->Run(); });
  return k;
}

Keeper::~Keeper() {
  watchers_.clear();  // No more callbacks after this.
  {
    internal::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Keeper::Run() {
  auto woken = [this] { return dirty_ || stop_; };
  while (true) {
    internal::MutexLock lock(&mu_);
    mu_.Await(internal::Condition(&woken));
    if (stop_) return;
    // Settle: wait until no change arrived for kSettle.
    do {
      dirty_ = false;
    } while (!mu_.AwaitWithTimeout(internal::Condition(&stop_), kSettle) &&
             dirty_);
    if (stop_) return;
    mu_.Unlock();
    const std::string err = Reload(/*first=*/false);
    if (!err.empty()) on_error_(err);
    mu_.Lock();
  }
}

std::string Keeper::Reload(bool first) {
  auto read = [](const std::string& path, std::string* out) {
    absl::StatusOr<std::string> s =
        config::ReadFileToString(path, kMaxFileBytes);
    if (!s.ok()) return std::string(s.status().message());
    *out = std::move(*s);
    return std::string();
  };
  const std::string kept =
      first ? "" : "; the previous identity files stay in force";
  // Bundles first: a bad one keeps the previous bundle.
  std::string bundle;
  std::string bundle_err;
  for (const std::string& path : files_.trust_bundles) {
    std::string one;
    bundle_err = read(path, &one);
    if (bundle_err.empty()) {
      absl::StatusOr<int> n = CheckBundle(one);
      if (!n.ok()) bundle_err = absl::StrCat(path, ": ", n.status().message());
    }
    if (!bundle_err.empty()) break;
    if (!one.empty() && one.back() != '\n') one += '\n';
    bundle += one;
  }
  if (!bundle_err.empty()) {
    if (first) return absl::StrCat("identity: ", bundle_err);
    bundle = bundle_;  // Keep the previous bundle; go on with the SVID.
  }
  std::string cert, key;
  std::string err = read(files_.certificate, &cert);
  if (err.empty()) err = read(files_.private_key, &key);
  absl::StatusOr<SvidInfo> info = absl::InternalError("");
  if (err.empty()) {
    info = CheckSvid(cert, key, bundle, time(nullptr));
    if (!info.ok()) {
      err = absl::StrCat(files_.certificate, ": ", info.status().message());
    } else if (info->id.trust_domain != trust_domain_) {
      err = absl::StrCat(files_.certificate, ": certificate ",
                         info->id.ToString(),
                         " is not in the mesh's trust domain ", trust_domain_);
    }
  }
  if (!err.empty()) {
    return absl::StrCat("identity: ", err, kept,
                        bundle_err.empty() ? "" : "; also ", bundle_err);
  }
  if (cert != cert_ || key != key_ || bundle != bundle_) {
    // A complete new generation, then one atomic swap of the link.
    const int gen = generation_ + 1;
    const std::string name = absl::StrCat("gen-", getpid(), "-", gen);
    const std::string dir = absl::StrCat(out_dir_, "/", name);
    const std::string link = out_dir_ + "/current";
    char previous[256] = {0};
    if (readlink(link.c_str(), previous, sizeof(previous) - 1) < 0) {
      previous[0] = 0;
    }
    // Modification times strictly later than the generation in force (also
    // one written by an earlier agent of this process).
    struct stat in_force;
    const time_t previous_mtime =
        stat(CertPath(out_dir_).c_str(), &in_force) == 0 ? in_force.st_mtime
                                                         : 0;
    const time_t mtime = std::max(time(nullptr), previous_mtime + 1);
    mkdir(dir.c_str(), 0700);
    for (const auto& [file, data, mode] :
         {std::tuple<const char*, const std::string&, mode_t>{
              kBundle, bundle, 0644},
          {kKey, key, 0600},
          {kCert, cert, 0644}}) {
      const std::string path = absl::StrCat(dir, "/", file);
      absl::Status st = WriteAtomically(path, data, mode);
      const timespec times[2] = {{mtime, 0}, {mtime, 0}};
      if (st.ok() && utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) {
        st = absl::InternalError(absl::StrCat(path, ": ", strerror(errno)));
      }
      if (!st.ok()) return absl::StrCat("identity: ", st.message(), kept);
    }
    unlink((link + ".tmp").c_str());
    if (symlink(name.c_str(), (link + ".tmp").c_str()) != 0 ||
        rename((link + ".tmp").c_str(), link.c_str()) != 0) {
      return absl::StrCat("identity: ", link, ": ", strerror(errno), kept);
    }
    // Older generations go; the previous one stays until the next swap, in
    // case gRPC is reading it right now.
    RemoveGenerations(out_dir_, name, previous);
    generation_ = gen;
    cert_ = cert;
    key_ = key;
    bundle_ = bundle;
  }
  on_loaded_(*info);
  if (!bundle_err.empty()) {
    return absl::StrCat("identity: ", bundle_err,
                        "; the previous trust bundle stays in force");
  }
  return "";
}

}  // namespace identity
}  // namespace mesh
