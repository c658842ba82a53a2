// The gateway's JWT verifier against tokens this test signs itself with real
// OpenSSL keys: what it accepts, every kind of token it must refuse (with
// the reason it logs), the JWKS rules, and key rotation through the file.

#include "examples/gateway/jwt.h"

#include <fstream>

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "mesh/common/sync.h"
#include "absl/strings/str_cat.h"
#include "tests/jwt_signer.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace gateway {
namespace {

using testing::SigningKey;

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

std::string Claims(const std::string& extra = "", int64_t exp_in = 300,
                   const std::string& aud = "\"api.example.test\"") {
  return absl::StrCat("{\"iss\": \"https://login.example.test\", \"sub\": "
                      "\"user-1\", \"aud\": ",
                      aud, ", \"exp\": ", absl::ToUnixSeconds(kNow) + exp_in,
                      extra, "}");
}

void WriteFile(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << data;
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
}

class JwtTest : public ::testing::Test {
 protected:
  JwtTest()
      : rsa_(SigningKey::Rsa("rsa-1")),
        ec_(SigningKey::Ec("ec-1")),
        dir_("mesh-jwt") {}

  void SetUp() override {
    WriteFile(Path(), testing::Jwks(rsa_, ec_));
    JwtConfig c;
    c.jwks_file = Path();
    c.issuer = "https://login.example.test";
    c.audiences = {"api.example.test", "other.example.test"};
    c.clock_skew = absl::Seconds(30);
    c.jwks_check_interval = absl::Milliseconds(20);
    auto v = JwtVerifier::Create(c, [this](const std::string& line) {
      internal::MutexLock lock(&mu_);
      log_.push_back(line);
    });
    ASSERT_TRUE(v.ok()) << v.status();
    verifier_ = *std::move(v);
  }

  std::string Path() const { return dir_.path() + "/jwks.json"; }

  // The reason a token is refused ("" if it is accepted).
  std::string Refusal(const std::string& token, absl::Time now = kNow) {
    auto t = verifier_->Verify(token, now);
    if (t.ok()) return "";
    EXPECT_EQ(t.status().code(), absl::StatusCode::kUnauthenticated);
    return std::string(t.status().message());
  }

  bool Logged(const std::string& part) {
    internal::MutexLock lock(&mu_);
    for (const std::string& l : log_) {
      if (absl::StrContains(l, part)) return true;
    }
    return false;
  }

  SigningKey rsa_, ec_;
  testing::TempDir dir_;
  std::unique_ptr<JwtVerifier> verifier_;
  internal::Mutex mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(mu_);
};

TEST_F(JwtTest, GoodRs256AndEs256TokensAreAccepted) {
  for (const SigningKey* k : {&rsa_, &ec_}) {
    auto t = verifier_->Verify(
        k->Sign(Claims(", \"scope\": \"greet read\", \"tier\": 3, "
                       "\"admin\": false, \"groups\": [\"a\", \"b\"], "
                       "\"nested\": {\"x\": 1}")),
        kNow);
    ASSERT_TRUE(t.ok()) << k->alg() << ": " << t.status();
    EXPECT_EQ(t->subject, "user-1");
    EXPECT_EQ(t->scopes, (std::vector<std::string>{"greet", "read"}));
    EXPECT_EQ(t->claims.at("tier"), "3");
    EXPECT_EQ(t->claims.at("admin"), "false");
    EXPECT_EQ(t->claims.at("groups"), "a,b");
    EXPECT_EQ(t->claims.count("nested"), 0u);  // Objects are not headers.
  }
  EXPECT_TRUE(Logged("jwks: loaded 2 key(s)"));
}

TEST_F(JwtTest, AudienceListAndScpClaimAreUnderstood) {
  auto t = verifier_->Verify(
      rsa_.Sign(Claims(", \"scp\": [\"a\", \"b\"]", 300,
                       "[\"someone.else\", \"other.example.test\"]")),
      kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->scopes, (std::vector<std::string>{"a", "b"}));
}

TEST_F(JwtTest, ATokenWithoutKidIsCheckedAgainstTheKeysOfItsAlgorithm) {
  SigningKey no_kid = SigningKey::Ec("");
  WriteFile(Path(), testing::Jwks(rsa_, no_kid));
  const uint64_t before = verifier_->reloads();
  verifier_->StartWatching();
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (verifier_->reloads() == before && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));  // Polling the counter.
  }
  ASSERT_GT(verifier_->reloads(), before);
  EXPECT_EQ(Refusal(no_kid.Sign(Claims())), "");
}

TEST_F(JwtTest, ExpiredAndNotYetValidTokensAreRefusedOutsideTheSkew) {
  EXPECT_EQ(Refusal(rsa_.Sign(Claims("", -20))), "");  // Within 30 s skew.
  EXPECT_TRUE(absl::StartsWith(Refusal(rsa_.Sign(Claims("", -31))),
                               "expired at "))
      << Refusal(rsa_.Sign(Claims("", -31)));
  const int64_t now = absl::ToUnixSeconds(kNow);
  EXPECT_EQ(Refusal(rsa_.Sign(Claims(absl::StrCat(", \"nbf\": ", now + 20)))),
            "");
  EXPECT_TRUE(absl::StartsWith(
      Refusal(rsa_.Sign(Claims(absl::StrCat(", \"nbf\": ", now + 31)))),
      "not valid before "));
  EXPECT_EQ(Refusal(rsa_.Sign("{\"iss\": \"https://login.example.test\", "
                              "\"sub\": \"u\", \"aud\": \"api.example.test\"}")),
            "no exp (a number of seconds since 1970)");
  EXPECT_EQ(Refusal(rsa_.Sign(Claims(", \"nbf\": \"soon\""))),
            "nbf is not a number");
}

TEST_F(JwtTest, WrongAudienceOrIssuerIsRefused) {
  EXPECT_EQ(Refusal(rsa_.Sign(Claims("", 300, "\"evil.example.test\""))),
            "audience [evil.example.test] names none of [api.example.test, "
            "other.example.test]");
  EXPECT_EQ(Refusal(rsa_.Sign(Claims("", 300, "[]"))),
            "audience [] names none of [api.example.test, other.example.test]");
  EXPECT_EQ(Refusal(ec_.Sign("{\"iss\": \"https://evil.test\", \"sub\": \"u\", "
                             "\"aud\": \"api.example.test\", \"exp\": 1e12}")),
            "issuer \"https://evil.test\" is not "
            "\"https://login.example.test\"");
  EXPECT_EQ(Refusal(ec_.Sign("{\"iss\": \"https://login.example.test\", "
                             "\"aud\": \"api.example.test\", \"exp\": 1e12}")),
            "no sub");
}

TEST_F(JwtTest, ATokenSignedWithAnotherKeyIsRefused) {
  // Same kid and algorithm as a trusted key, different key.
  SigningKey impostor_rsa = SigningKey::Rsa("rsa-1");
  SigningKey impostor_ec = SigningKey::Ec("ec-1");
  EXPECT_EQ(Refusal(impostor_rsa.Sign(Claims())),
            "the RS256 signature does not verify with kid rsa-1");
  EXPECT_EQ(Refusal(impostor_ec.Sign(Claims())),
            "the ES256 signature does not verify with kid ec-1");
  // A kid the key set does not have.
  EXPECT_EQ(Refusal(SigningKey::Rsa("rsa-9").Sign(Claims())),
            "no RS256 key with kid \"rsa-9\" in the key set");
  // A trusted token with its claims changed after signing.
  const std::string good = rsa_.Sign(Claims());
  const std::string forged =
      good.substr(0, good.find('.') + 1) +
      testing::B64(Claims("", 300, "\"api.example.test\", \"admin\": true")) +
      good.substr(good.rfind('.'));
  EXPECT_EQ(Refusal(forged),
            "the RS256 signature does not verify with kid rsa-1");
}

TEST_F(JwtTest, AlgNoneIsRefused) {
  EXPECT_EQ(Refusal(testing::UnsignedToken(Claims())),
            "alg \"none\" is not accepted (only RS256 and ES256)");
  // And with a signature part that is not empty.
  EXPECT_EQ(Refusal(testing::UnsignedToken(Claims()) + "AAAA"),
            "alg \"none\" is not accepted (only RS256 and ES256)");
}

TEST_F(JwtTest, Hs256WithThePublicKeyAsSecretIsRefused) {
  // The classic confusion: a verifier that takes the key's bytes as an HMAC
  // secret when the token says HS256. This one never computes an HMAC.
  for (const std::string& secret :
       {rsa_.PublicPem(), rsa_.Jwk(), std::string("")}) {
    EXPECT_EQ(Refusal(testing::Hs256Token(rsa_.Header("HS256"), Claims(),
                                          secret)),
              "alg \"HS256\" is not accepted (only RS256 and ES256)");
  }
  // Nor does a token claiming RS256 for an EC key (or the reverse) pass.
  const std::string input =
      absl::StrCat(testing::B64(ec_.Header("RS256")), ".",
                   testing::B64(Claims()));
  EXPECT_EQ(Refusal(input + "." + testing::B64(ec_.Signature(input))),
            "no RS256 key with kid \"ec-1\" in the key set");
}

TEST_F(JwtTest, GarbageIsRefused) {
  EXPECT_EQ(Refusal(""),
            "not a compact JWS (three base64url parts joined by dots)");
  EXPECT_EQ(Refusal("abc"),
            "not a compact JWS (three base64url parts joined by dots)");
  EXPECT_EQ(Refusal("a.b.c.d"),
            "not a compact JWS (three base64url parts joined by dots)");
  EXPECT_EQ(Refusal("!!!.???.###"), "the header is not base64url JSON");
  EXPECT_EQ(Refusal(testing::B64("not json") + ".e30.AAAA"),
            "the header is not base64url JSON");
  EXPECT_EQ(Refusal(testing::B64("[1, 2]") + ".e30.AAAA"),
            "the header is not base64url JSON");
  // Padding is not base64url in JWS.
  const std::string good = ec_.Sign(Claims());
  EXPECT_EQ(Refusal(good + "=="), "the signature is missing or not base64url");
  EXPECT_EQ(Refusal(good.substr(0, good.rfind('.') + 1)),
            "the signature is missing or not base64url");
  // Another spelling of the same signature (nonzero unused bits in the last
  // character): one token, one string.
  // (ES256: 64 bytes, so the last character carries 4 unused bits; flip
  // the lowest.)
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const std::string sig = good.substr(good.rfind('.') + 1);
  std::string respelled = good;
  respelled.back() =
      kAlphabet[(std::string(kAlphabet).find(respelled.back())) ^ 1];
  std::string a, b;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(sig, &a));
  ASSERT_TRUE(absl::WebSafeBase64Unescape(
      respelled.substr(respelled.rfind('.') + 1), &b));
  ASSERT_EQ(a, b);  // The same bytes, another string.
  EXPECT_EQ(Refusal(respelled), "the signature is missing or not base64url");
  // A crit header.
  EXPECT_EQ(Refusal(ec_.Sign(Claims(), ", \"crit\": [\"exp\"]")),
            "the header has crit (no extension is understood)");
  // ES256 with the DER form of the signature instead of R || S.
  const std::string input = good.substr(0, good.rfind('.'));
  EXPECT_EQ(Refusal(input + "." + testing::B64(ec_.DerSignature(input))),
            "the ES256 signature does not verify with kid ec-1");
  // A signed payload that is not JSON.
  const std::string in2 =
      absl::StrCat(testing::B64(rsa_.Header("RS256")), ".",
                   testing::B64("\xff\xfe not json"));
  EXPECT_EQ(Refusal(in2 + "." + testing::B64(rsa_.Signature(in2))),
            "the payload is not base64url JSON");
  // Too big.
  EXPECT_TRUE(absl::StartsWith(Refusal(std::string(20000, 'a')),
                               "token of 20000 bytes is over the limit"));
}

TEST(JwksTest, BadKeySetsSayWhatAndWhere) {
  auto err = [](const std::string& json) {
    auto s = ParseJwks(json, "jwks.json");
    return s.ok() ? std::string("ok") : std::string(s.status().message());
  };
  EXPECT_EQ(err("nope"),
            "jwks.json: not a JSON object (a JWKS: {\"keys\": [...]})");
  EXPECT_EQ(err("{}"),
            "jwks.json: \"keys\" must be a list (a JWKS: {\"keys\": [...]})");
  EXPECT_EQ(err("{\"keys\": []}"),
            "jwks.json: no usable key (RSA of 2048 bits or more, or EC "
            "P-256, for signatures)");
  EXPECT_EQ(err("{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}"),
            "jwks.json: no usable key (RSA of 2048 bits or more, or EC "
            "P-256, for signatures); skipped keys[0]: kty \"oct\" (only RSA "
            "and EC)");
  const std::string weak = SigningKey::Rsa("weak", 1024).Jwk();
  EXPECT_EQ(err("{\"keys\": [" + weak + "]}"),
            "jwks.json: keys[0] (RSA, kid weak): an RSA key of 1024 bits is "
            "too weak (at least 2048)");
  const std::string ec = SigningKey::Ec("e").Jwk();
  EXPECT_EQ(err("{\"keys\": [" + ec + ", " + ec + "]}"),
            "jwks.json: keys[1]: kid \"e\" is used twice");
  EXPECT_EQ(err("{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"" +
                testing::B64(std::string(32, '\1')) + "\", \"y\": \"" +
                testing::B64(std::string(32, '\2')) + "\"}]}"),
            "jwks.json: keys[0] (EC): x, y is not a point on P-256");
  EXPECT_EQ(err("{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-384\"}]}"),
            "jwks.json: keys[0] (EC): crv \"P-384\" is not supported (only "
            "P-256)");
  EXPECT_EQ(err("{\"keys\": [{\"kty\": \"RSA\", \"n\": \"***\", \"e\": "
                "\"AQAB\"}]}"),
            "jwks.json: keys[0] (RSA): n and e must be base64url strings");
  // Keys for other uses are skipped, the rest kept.
  auto set = ParseJwks("{\"keys\": [{\"kty\": \"RSA\", \"use\": \"enc\"}, " +
                           ec + "]}",
                       "jwks.json");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(KeyCount(**set), 1u);
}

TEST_F(JwtTest, RotationThroughTheFileAndABadFileKeepsTheLastGoodKeys) {
  verifier_->StartWatching();
  auto await_reloads = [&](uint64_t n) {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (verifier_->reloads() < n && absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(5));  // Polling the counter.
    }
    return verifier_->reloads() >= n;
  };
  SigningKey next = SigningKey::Ec("ec-2");
  EXPECT_NE(Refusal(next.Sign(Claims())), "");
  // Rotation: the new key in, the old EC key out.
  WriteFile(Path(), testing::Jwks(rsa_, next));
  ASSERT_TRUE(await_reloads(1));
  EXPECT_EQ(Refusal(next.Sign(Claims())), "");
  EXPECT_EQ(Refusal(ec_.Sign(Claims())),
            "no ES256 key with kid \"ec-1\" in the key set");
  // A broken file: logged, and the keys stay.
  WriteFile(Path(), "{\"keys\": [");
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!Logged("the keys loaded before stay in force") && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));  // Polling the log.
  }
  EXPECT_TRUE(Logged(Path() + ": not a JSON object"));
  EXPECT_TRUE(Logged("the keys loaded before stay in force"));
  EXPECT_EQ(verifier_->reloads(), 1u);
  EXPECT_EQ(Refusal(next.Sign(Claims())), "");
  // A deleted file, too.
  ASSERT_EQ(unlink(Path().c_str()), 0);
  EXPECT_EQ(Refusal(next.Sign(Claims())), "");
}

TEST(JwtVerifierTest, StartsOnlyWithAUsableKeySet) {
  JwtConfig c;
  c.jwks_file = "/nonexistent/jwks.json";
  c.issuer = "i";
  c.audiences = {"a"};
  auto v = JwtVerifier::Create(c, [](const std::string&) {});
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "/nonexistent/jwks.json: cannot read");
}

}  // namespace
}  // namespace gateway
}  // namespace mesh
