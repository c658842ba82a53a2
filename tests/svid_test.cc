// The X.509-SVID rules, against certificates made by a real CA (DevCa,
// OpenSSL): one good SVID, and a negative corpus where each certificate
// breaks one rule and must be refused with its own message.

#include "mesh/identity/svid.h"

#include <ctime>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mesh/identity/dev_ca.h"

namespace mesh {
namespace identity {
namespace {

using ::testing::HasSubstr;

constexpr char kId[] = "spiffe://example.org/ns/default/sa/greeter";

class SvidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = DevCa::Create("mesh test CA");
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = std::move(*ca);
    auto other = DevCa::Create("some other CA");
    ASSERT_TRUE(other.ok()) << other.status();
    other_ca_ = std::move(*other);
  }

  Pem Issue(LeafOptions o, const DevCa* ca = nullptr) {
    auto pem = (ca == nullptr ? ca_.get() : ca)->Issue(o);
    EXPECT_TRUE(pem.ok()) << pem.status();
    return pem.ok() ? *pem : Pem{};
  }
  static LeafOptions With(std::vector<std::string> uris) {
    LeafOptions o;
    o.uris = std::move(uris);
    return o;
  }
  absl::Status Check(const Pem& p) {
    return CheckSvid(p.cert, p.key, ca_->cert_pem(), time(nullptr)).status();
  }

  std::unique_ptr<DevCa> ca_;
  std::unique_ptr<DevCa> other_ca_;
};

TEST_F(SvidTest, GoodSvidIsAccepted) {
  Pem p = Issue(With({kId}));
  auto info = CheckSvid(p.cert, p.key, ca_->cert_pem(), time(nullptr));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id.ToString(), kId);
  EXPECT_EQ(info->id.trust_domain, "example.org");
  EXPECT_EQ(info->id.path, "/ns/default/sa/greeter");
  EXPECT_FALSE(info->serial_hex.empty());
  EXPECT_GT(info->not_after, time(nullptr) + 23 * 3600);
  EXPECT_LT(info->not_after, time(nullptr) + 25 * 3600);
  auto peer = PeerSvid(p.cert);
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->serial_hex, info->serial_hex);
}

// Each entry breaks one rule; the message names it.
struct Bad {
  const char* name;
  LeafOptions options;
  const char* message;
};

TEST_F(SvidTest, NegativeCorpusIsRefusedEachWithItsOwnMessage) {
  LeafOptions ca_leaf = With({kId});
  ca_leaf.is_ca = true;
  LeafOptions no_digsig = With({kId});
  no_digsig.key_usage = "critical,keyEncipherment";
  LeafOptions cert_sign = With({kId});
  cert_sign.key_usage = "critical,digitalSignature,keyCertSign";
  LeafOptions crl_sign = With({kId});
  crl_sign.key_usage = "critical,digitalSignature,cRLSign";
  LeafOptions no_ku = With({kId});
  no_ku.key_usage = "";
  LeafOptions expired = With({kId});
  expired.not_before_offset_s = -7200;
  expired.not_after_offset_s = -3600;
  LeafOptions future = With({kId});
  future.not_before_offset_s = 3600;
  future.not_after_offset_s = 7200;
  const std::vector<Bad> corpus = {
      {"two URI SANs", With({kId, "spiffe://example.org/ns/default/sa/b"}),
       "exactly one URI SAN, this one has 2"},
      {"no URI SAN", With({}), "exactly one URI SAN, this one has 0"},
      {"http URI", With({"http://example.org/ns/default/sa/greeter"}),
       "the scheme must be \"spiffe://\""},
      {"empty path", With({"spiffe://example.org"}), "needs a path"},
      {"empty trust domain", With({"spiffe:///ns/a"}),
       "the trust domain is empty"},
      {"query", With({"spiffe://example.org/ns/a?x=1"}),
       "must not have a query or fragment"},
      {"fragment", With({"spiffe://example.org/ns/a#x"}),
       "must not have a query or fragment"},
      {"port", With({"spiffe://example.org:443/ns/a"}),
       "must not have a port"},
      {"uppercase trust domain", With({"spiffe://Example.org/ns/a"}),
       "only have lowercase letters"},
      {"dot-dot segment", With({"spiffe://example.org/ns/../a"}),
       "is \".\" or \"..\""},
      {"empty segment", With({"spiffe://example.org/ns//a"}),
       "a path segment is empty"},
      {"CA leaf", ca_leaf, "must not be a CA"},
      {"no keyUsage", no_ku, "has no keyUsage extension"},
      {"no digitalSignature", no_digsig, "lacks digitalSignature"},
      {"keyCertSign", cert_sign, "keyCertSign or cRLSign"},
      {"cRLSign", crl_sign, "keyCertSign or cRLSign"},
      {"expired", expired, "has expired"},
      {"not yet valid", future, "is not valid yet"},
  };
  for (const Bad& b : corpus) {
    absl::Status st = Check(Issue(b.options));
    EXPECT_FALSE(st.ok()) << b.name;
    EXPECT_THAT(std::string(st.message()), HasSubstr(b.message)) << b.name;
  }
}

TEST_F(SvidTest, CertificateFromAnotherCaIsRefused) {
  Pem p = Issue(With({kId}), other_ca_.get());
  absl::Status st = Check(p);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("is not signed by a CA of the trust bundle"));
}

TEST_F(SvidTest, KeyMismatchIsRefused) {
  Pem a = Issue(With({kId}));
  Pem b = Issue(With({kId}));
  absl::Status st =
      CheckSvid(a.cert, b.key, ca_->cert_pem(), time(nullptr)).status();
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("the private key does not match"));
}

TEST_F(SvidTest, GarbageIsRefusedNotCrashed) {
  Pem good = Issue(With({kId}));
  EXPECT_THAT(std::string(Check({"", good.key}).message()),
              HasSubstr("no PEM certificate found"));
  EXPECT_THAT(std::string(Check({"hello", good.key}).message()),
              HasSubstr("no PEM certificate found"));
  EXPECT_THAT(std::string(Check({good.cert, "not a key"}).message()),
              HasSubstr("no PEM private key found"));
  std::string truncated = good.cert.substr(0, good.cert.size() / 2);
  EXPECT_FALSE(Check({truncated, good.key}).ok());
  EXPECT_FALSE(PeerSvid(truncated).ok());
  // A chain whose second block is broken.
  std::string broken = good.cert + "-----BEGIN CERTIFICATE-----\nAAAA\n" +
                       "-----END CERTIFICATE-----\n";
  EXPECT_THAT(std::string(Check({broken, good.key}).message()),
              HasSubstr("certificate 2 does not parse"));
}

TEST_F(SvidTest, BundleMustHoldCaCertificates) {
  auto n = CheckBundle(ca_->cert_pem() + other_ca_->cert_pem());
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2);
  Pem leaf = Issue(With({kId}));
  EXPECT_THAT(std::string(CheckBundle(leaf.cert).status().message()),
              HasSubstr("certificate 1 is not a CA"));
  EXPECT_THAT(std::string(CheckBundle("junk").status().message()),
              HasSubstr("no PEM certificate found"));
}

TEST(SpiffeIdTest, ParsesAndRefuses) {
  auto id = ParseSpiffeId("spiffe://td.example_1-x/a/b.c/d-e_f");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->trust_domain, "td.example_1-x");
  EXPECT_EQ(id->path, "/a/b.c/d-e_f");
  EXPECT_TRUE(ParseSpiffeId("spiffe://td", /*require_path=*/false).ok());
  EXPECT_FALSE(ParseSpiffeId("spiffe://td/").ok());  // Empty segment.
  EXPECT_FALSE(ParseSpiffeId("spiffe://user@td/a").ok());
  EXPECT_FALSE(ParseSpiffeId("SPIFFE://td/a").ok());
  EXPECT_FALSE(ParseSpiffeId("spiffe://td/a b").ok());
  EXPECT_FALSE(ParseSpiffeId(std::string(3000, 'a')).ok());
}

}  // namespace
}  // namespace identity
}  // namespace mesh
