// OpenSSL 3 marks the RSA_*/EC_KEY_* calls below deprecated in favour of
// EVP_PKEY_fromdata, which BoringSSL does not have; these are the calls both
// libraries share (DEVELOPERS.md: TLS code on the shared API).
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "examples/gateway/jwt.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>
#include <sys/stat.h>

#include <cmath>
#include <set>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "examples/gateway/gateway_config.h"  // ReadFile

namespace mesh {
namespace gateway {

using google::protobuf::Struct;
using google::protobuf::Value;

namespace {

constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr size_t kMaxJwksBytes = 1024 * 1024;

// Strict base64url without padding (RFC 7515 section 2), and canonical:
// unused bits of the last character must be zero, so one token has one
// spelling (a cache or a revocation list keyed by the string cannot be
// dodged by changing the last character).
bool Base64Url(absl::string_view in, std::string* out) {
  for (char c : in) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_')) return false;
  }
  if (in.size() % 4 == 1) return false;
  if (!absl::WebSafeBase64Unescape(in, out)) return false;
  std::string again;
  absl::WebSafeBase64Escape(*out, &again);
  return again == in;
}

bool ParseJsonObject(absl::string_view json, Struct* out) {
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  return google::protobuf::util::JsonStringToMessage(
             google::protobuf::StringPiece(json.data(), json.size()), out, o)
      .ok();
}

const Value* Field(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}

// A string field, "" if absent or not a string.
std::string StringField(const Struct& s, const std::string& name) {
  const Value* v = Field(s, name);
  return v != nullptr && v->kind_case() == Value::kStringValue
             ? v->string_value()
             : "";
}

std::string NumberText(double d) {
  if (std::floor(d) == d && std::fabs(d) < 9.007199254740992e15) {
    return absl::StrCat(static_cast<int64_t>(d));
  }
  return absl::StrCat(d);
}

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;

Bn BigEndian(const std::string& bytes) {
  return Bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                      static_cast<int>(bytes.size()), nullptr));
}

}  // namespace

// ------------------------------------------------------------------ keys

class JwtKeySet {
 public:
  struct Key {
    std::string kid;  // "" if the JWK has none.
    std::string alg;  // "RS256" (kty RSA) or "ES256" (kty EC, P-256).
    EVP_PKEY* pkey = nullptr;
  };
  ~JwtKeySet() {
    for (Key& k : keys) EVP_PKEY_free(k.pkey);
  }
  std::vector<Key> keys;
  std::vector<std::string> skipped;  // Why keys were not used.
};

size_t KeyCount(const JwtKeySet& keys) { return keys.keys.size(); }

namespace {

// One JWK of type RSA or EC, as an EVP_PKEY; nullptr and `error` if it is
// malformed.
EVP_PKEY* RsaKey(const Struct& jwk, std::string* error) {
  std::string n, e;
  if (!Base64Url(StringField(jwk, "n"), &n) || n.empty() ||
      !Base64Url(StringField(jwk, "e"), &e) || e.empty()) {
    *error = "n and e must be base64url strings";
    return nullptr;
  }
  Bn bn_n = BigEndian(n), bn_e = BigEndian(e);
  if (bn_n == nullptr || bn_e == nullptr) {
    *error = "n or e is not a number";
    return nullptr;
  }
  if (BN_num_bits(bn_n.get()) < 2048) {
    *error = absl::StrCat("an RSA key of ", BN_num_bits(bn_n.get()),
                          " bits is too weak (at least 2048)");
    return nullptr;
  }
  RSA* rsa = RSA_new();
  if (rsa == nullptr || RSA_set0_key(rsa, bn_n.get(), bn_e.get(), nullptr) != 1) {
    RSA_free(rsa);
    *error = "not a usable RSA key";
    return nullptr;
  }
  bn_n.release();  // Owned by rsa now.
  bn_e.release();
  EVP_PKEY* pkey = EVP_PKEY_new();
  if (pkey == nullptr || EVP_PKEY_assign_RSA(pkey, rsa) != 1) {
    EVP_PKEY_free(pkey);
    RSA_free(rsa);
    *error = "not a usable RSA key";
    return nullptr;
  }
  return pkey;
}

EVP_PKEY* EcKey(const Struct& jwk, std::string* error) {
  if (StringField(jwk, "crv") != "P-256") {
    *error = absl::StrCat("crv \"", StringField(jwk, "crv"),
                          "\" is not supported (only P-256)");
    return nullptr;
  }
  std::string x, y;
  if (!Base64Url(StringField(jwk, "x"), &x) || x.size() != 32 ||
      !Base64Url(StringField(jwk, "y"), &y) || y.size() != 32) {
    *error = "x and y must be base64url strings of 32 bytes";
    return nullptr;
  }
  Bn bn_x = BigEndian(x), bn_y = BigEndian(y);
  EC_KEY* ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  // Checks that the point is on the curve.
  if (ec == nullptr || bn_x == nullptr || bn_y == nullptr ||
      EC_KEY_set_public_key_affine_coordinates(ec, bn_x.get(), bn_y.get()) !=
          1) {
    EC_KEY_free(ec);
    ERR_clear_error();
    *error = "x, y is not a point on P-256";
    return nullptr;
  }
  EVP_PKEY* pkey = EVP_PKEY_new();
  if (pkey == nullptr || EVP_PKEY_assign_EC_KEY(pkey, ec) != 1) {
    EVP_PKEY_free(pkey);
    EC_KEY_free(ec);
    *error = "not a usable EC key";
    return nullptr;
  }
  return pkey;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const JwtKeySet>> ParseJwks(
    absl::string_view json, const std::string& name) {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
  };
  if (json.size() > kMaxJwksBytes) {
    return bad(absl::StrCat("over ", kMaxJwksBytes, " bytes"));
  }
  Struct doc;
  if (!ParseJsonObject(json, &doc)) {
    return bad("not a JSON object (a JWKS: {\"keys\": [...]})");
  }
  const Value* keys = Field(doc, "keys");
  if (keys == nullptr || keys->kind_case() != Value::kListValue) {
    return bad("\"keys\" must be a list (a JWKS: {\"keys\": [...]})");
  }
  auto set = std::make_shared<JwtKeySet>();
  std::set<std::string> kids;
  for (int i = 0; i < keys->list_value().values_size(); ++i) {
    const std::string where = absl::StrCat("keys[", i, "]");
    const Value& v = keys->list_value().values(i);
    if (v.kind_case() != Value::kStructValue) {
      return bad(absl::StrCat(where, ": must be an object"));
    }
    const Struct& jwk = v.struct_value();
    const std::string kty = StringField(jwk, "kty");
    const std::string use = StringField(jwk, "use");
    const std::string alg = StringField(jwk, "alg");
    const std::string kid = StringField(jwk, "kid");
    JwtKeySet::Key key;
    key.kid = kid;
    if (kty == "RSA") {
      key.alg = "RS256";
    } else if (kty == "EC") {
      key.alg = "ES256";
    } else {
      set->skipped.push_back(
          absl::StrCat(where, ": kty \"", kty, "\" (only RSA and EC)"));
      continue;
    }
    if (!use.empty() && use != "sig") {
      set->skipped.push_back(absl::StrCat(where, ": use \"", use, "\""));
      continue;
    }
    if (!alg.empty() && alg != key.alg) {
      set->skipped.push_back(absl::StrCat(where, ": alg \"", alg,
                                          "\" (only RS256 and ES256)"));
      continue;
    }
    if (!kid.empty() && !kids.insert(kid).second) {
      return bad(absl::StrCat(where, ": kid \"", kid, "\" is used twice"));
    }
    std::string error;
    key.pkey = kty == "RSA" ? RsaKey(jwk, &error) : EcKey(jwk, &error);
    if (key.pkey == nullptr) {
      return bad(absl::StrCat(where, " (", kty,
                              kid.empty() ? "" : ", kid " + kid, "): ", error));
    }
    set->keys.push_back(key);
  }
  if (set->keys.empty()) {
    return bad(absl::StrCat(
        "no usable key (RSA of 2048 bits or more, or EC P-256, for "
        "signatures)",
        set->skipped.empty() ? "" : "; skipped ",
        absl::StrJoin(set->skipped, "; ")));
  }
  return std::shared_ptr<const JwtKeySet>(std::move(set));
}

// -------------------------------------------------------------- verifier

namespace {

bool VerifySignature(const JwtKeySet::Key& key, absl::string_view input,
                     const std::string& sig) {
  std::string der;
  if (key.alg == "ES256") {
    // JWS carries R || S (32 bytes each); OpenSSL wants an ASN.1 ECDSA-Sig.
    if (sig.size() != 64) return false;
    ECDSA_SIG* es = ECDSA_SIG_new();
    Bn r = BigEndian(sig.substr(0, 32)), s = BigEndian(sig.substr(32));
    if (es == nullptr || r == nullptr || s == nullptr ||
        ECDSA_SIG_set0(es, r.get(), s.get()) != 1) {
      ECDSA_SIG_free(es);
      return false;
    }
    r.release();
    s.release();
    unsigned char* out = nullptr;
    const int len = i2d_ECDSA_SIG(es, &out);
    ECDSA_SIG_free(es);
    if (len <= 0) return false;
    der.assign(reinterpret_cast<char*>(out), len);
    OPENSSL_free(out);
  } else {
    der = sig;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      ctx != nullptr &&
      EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.pkey) ==
          1 &&
      EVP_DigestVerifyUpdate(ctx, input.data(), input.size()) == 1 &&
      EVP_DigestVerifyFinal(
          ctx, reinterpret_cast<const unsigned char*>(der.data()),
          der.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

absl::Status Refuse(const std::string& why) {
  return absl::UnauthenticatedError(why);
}

}  // namespace

JwtVerifier::JwtVerifier(JwtConfig config,
                         std::function<void(const std::string&)> log)
    : config_(std::move(config)), log_(std::move(log)) {}

JwtVerifier::~JwtVerifier() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stopped_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

namespace {

// "size/mtime/inode" of a file, "" if it cannot be read.
std::string Stamp(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "";
  return absl::StrCat(st.st_size, "/", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec, "/", st.st_ino);
}

absl::StatusOr<std::shared_ptr<const JwtKeySet>> LoadJwks(
    const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseJwks(*text, path);
}

std::string Loaded(const JwtKeySet& keys, const std::string& path) {
  return absl::StrCat(
      "jwks: loaded ", keys.keys.size(), " key(s) from ", path,
      keys.skipped.empty() ? "" : " (skipped ",
      absl::StrJoin(keys.skipped, "; "), keys.skipped.empty() ? "" : ")");
}

}  // namespace

absl::StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(
    JwtConfig config, std::function<void(const std::string&)> log) {
  std::unique_ptr<JwtVerifier> v(
      new JwtVerifier(std::move(config), std::move(log)));
  const std::string stamp = Stamp(v->config_.jwks_file);
  auto keys = LoadJwks(v->config_.jwks_file);
  if (!keys.ok()) return keys.status();
  v->log_(Loaded(**keys, v->config_.jwks_file));
  std::lock_guard<std::mutex> lock(v->mu_);
  v->keys_ = *std::move(keys);
  v->file_stamp_ = stamp;
  return v;
}

void JwtVerifier::StartWatching() {
  watcher_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopped_.wait_for(lock,
                              absl::ToChronoMilliseconds(
                                  config_.jwks_check_interval),
                              [this] { return stop_; })) {
      lock.unlock();
      CheckFile();
      lock.lock();
    }
  });
}

void JwtVerifier::CheckFile() {
  const std::string stamp = Stamp(config_.jwks_file);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stamp == file_stamp_) return;
    file_stamp_ = stamp;  // Logged once per change, good or bad.
  }
  auto keys = LoadJwks(config_.jwks_file);
  if (!keys.ok()) {
    log_(absl::StrCat("jwks: ", keys.status().message(),
                      "; the keys loaded before stay in force"));
    return;
  }
  log_(Loaded(**keys, config_.jwks_file));
  std::lock_guard<std::mutex> lock(mu_);
  keys_ = *std::move(keys);
  ++reloads_;
}

uint64_t JwtVerifier::reloads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reloads_;
}

absl::StatusOr<VerifiedToken> JwtVerifier::Verify(absl::string_view token,
                                                  absl::Time now) const {
  if (token.size() > kMaxTokenBytes) {
    return Refuse(absl::StrCat("token of ", token.size(),
                               " bytes is over the limit of ", kMaxTokenBytes));
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) {
    return Refuse("not a compact JWS (three base64url parts joined by dots)");
  }
  std::string header_json, payload_json, signature;
  Struct header, claims;
  if (!Base64Url(parts[0], &header_json) ||
      !ParseJsonObject(header_json, &header)) {
    return Refuse("the header is not base64url JSON");
  }
  const std::string alg = StringField(header, "alg");
  if (alg != "RS256" && alg != "ES256") {
    return Refuse(absl::StrCat("alg \"", alg,
                               "\" is not accepted (only RS256 and ES256)"));
  }
  if (Field(header, "crit") != nullptr) {
    return Refuse("the header has crit (no extension is understood)");
  }
  if (parts[2].empty() || !Base64Url(parts[2], &signature)) {
    return Refuse("the signature is missing or not base64url");
  }
  const std::string kid = StringField(header, "kid");
  std::shared_ptr<const JwtKeySet> keys;
  {
    std::lock_guard<std::mutex> lock(mu_);
    keys = keys_;
  }
  // Keys of the token's algorithm (and its kid, if it names one).
  const absl::string_view input(token.data(),
                                parts[0].size() + 1 + parts[1].size());
  bool candidate = false, verified = false;
  for (const JwtKeySet::Key& k : keys->keys) {
    if (k.alg != alg || (!kid.empty() && k.kid != kid)) continue;
    candidate = true;
    if (VerifySignature(k, input, signature)) {
      verified = true;
      break;
    }
  }
  if (!candidate) {
    return Refuse(kid.empty()
                      ? absl::StrCat("no ", alg, " key in the key set")
                      : absl::StrCat("no ", alg, " key with kid \"", kid,
                                     "\" in the key set"));
  }
  if (!verified) {
    return Refuse(absl::StrCat("the ", alg, " signature does not verify",
                               kid.empty() ? "" : " with kid " + kid));
  }
  // Only now are the claims looked at.
  if (!Base64Url(parts[1], &payload_json) ||
      !ParseJsonObject(payload_json, &claims)) {
    return Refuse("the payload is not base64url JSON");
  }
  const std::string iss = StringField(claims, "iss");
  if (iss != config_.issuer) {
    return Refuse(absl::StrCat("issuer \"", iss, "\" is not \"",
                               config_.issuer, "\""));
  }
  std::vector<std::string> auds;
  if (const Value* aud = Field(claims, "aud"); aud != nullptr) {
    if (aud->kind_case() == Value::kStringValue) {
      auds.push_back(aud->string_value());
    } else if (aud->kind_case() == Value::kListValue) {
      for (const Value& a : aud->list_value().values()) {
        if (a.kind_case() == Value::kStringValue) {
          auds.push_back(a.string_value());
        }
      }
    }
  }
  bool aud_ok = false;
  for (const std::string& a : auds) {
    for (const std::string& want : config_.audiences) aud_ok |= a == want;
  }
  if (!aud_ok) {
    return Refuse(absl::StrCat("audience [", absl::StrJoin(auds, ", "),
                               "] names none of [",
                               absl::StrJoin(config_.audiences, ", "), "]"));
  }
  const double now_s = absl::ToDoubleSeconds(now - absl::UnixEpoch());
  const double skew = absl::ToDoubleSeconds(config_.clock_skew);
  const Value* exp = Field(claims, "exp");
  if (exp == nullptr || exp->kind_case() != Value::kNumberValue) {
    return Refuse("no exp (a number of seconds since 1970)");
  }
  if (now_s >= exp->number_value() + skew) {
    return Refuse(absl::StrCat("expired at ", NumberText(exp->number_value()),
                               " (now ", NumberText(std::floor(now_s)),
                               ", skew ", NumberText(skew), " s)"));
  }
  if (const Value* nbf = Field(claims, "nbf"); nbf != nullptr) {
    if (nbf->kind_case() != Value::kNumberValue) {
      return Refuse("nbf is not a number");
    }
    if (now_s < nbf->number_value() - skew) {
      return Refuse(absl::StrCat(
          "not valid before ", NumberText(nbf->number_value()), " (now ",
          NumberText(std::floor(now_s)), ", skew ", NumberText(skew), " s)"));
    }
  }
  VerifiedToken t;
  t.subject = StringField(claims, "sub");
  if (t.subject.empty()) return Refuse("no sub");
  if (const std::string scope = StringField(claims, "scope"); !scope.empty()) {
    t.scopes = absl::StrSplit(scope, ' ', absl::SkipEmpty());
  } else if (const Value* scp = Field(claims, "scp"); scp != nullptr) {
    if (scp->kind_case() == Value::kStringValue) {
      t.scopes = absl::StrSplit(scp->string_value(), ' ', absl::SkipEmpty());
    } else if (scp->kind_case() == Value::kListValue) {
      for (const Value& s : scp->list_value().values()) {
        if (s.kind_case() == Value::kStringValue) {
          t.scopes.push_back(s.string_value());
        }
      }
    }
  }
  for (const auto& [name, v] : claims.fields()) {
    switch (v.kind_case()) {
      case Value::kStringValue:
        t.claims[name] = v.string_value();
        break;
      case Value::kNumberValue:
        t.claims[name] = NumberText(v.number_value());
        break;
      case Value::kBoolValue:
        t.claims[name] = v.bool_value() ? "true" : "false";
        break;
      case Value::kListValue: {
        std::vector<std::string> items;
        bool strings = true;
        for (const Value& s : v.list_value().values()) {
          strings &= s.kind_case() == Value::kStringValue;
          if (strings) items.push_back(s.string_value());
        }
        if (strings) t.claims[name] = absl::StrJoin(items, ",");
        break;
      }
      default:
        break;
    }
  }
  return t;
}

}  // namespace gateway
}  // namespace mesh
