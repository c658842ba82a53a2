// mesh/config/yaml.h: the tree the config readers walk, and the rules it
// keeps from the yaml-cpp reader it replaced (nulls, aliases, duplicate
// keys, one document, marks), plus what a hostile text gets.

#include "mesh/config/yaml.h"

#include <string>

#include <gtest/gtest.h>

namespace mesh {
namespace config {
namespace yaml {
namespace {

Document MustParse(const std::string& text) {
  absl::StatusOr<Document> d = Document::Parse(text, "t.yaml");
  EXPECT_TRUE(d.ok()) << d.status();
  return *std::move(d);
}

std::string ErrorOf(const std::string& text) {
  absl::StatusOr<Document> d = Document::Parse(text, "t.yaml");
  EXPECT_FALSE(d.ok()) << text;
  if (!d.ok()) {
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  }
  return d.ok() ? "" : std::string(d.status().message());
}

TEST(YamlTest, MapsListsAndScalarsWithTheirPositions) {
  Document d = MustParse("a: 1\nb:\n  - x\n  - {c: \"q\"}\n");
  Node root = d.root();
  ASSERT_TRUE(root.IsMap());
  EXPECT_EQ(root.size(), 2u);
  EXPECT_EQ(root["a"].Scalar(), "1");
  EXPECT_TRUE(root["a"].IsPlain());
  EXPECT_EQ(root["a"].Mark().line, 0);
  EXPECT_EQ(root["a"].Mark().column, 3);
  Node b = root["b"];
  ASSERT_TRUE(b.IsSequence());
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b.Mark().line, 2);
  EXPECT_EQ(b.Mark().column, 2);
  EXPECT_EQ(b[0].Scalar(), "x");
  EXPECT_TRUE(b[1].IsMap());
  EXPECT_EQ(b[1].Mark().column, 4);  // the '{'
  EXPECT_EQ(b[1]["c"].Scalar(), "q");
  EXPECT_FALSE(b[1]["c"].IsPlain());  // quoted
  // Out of range and missing keys are undefined, with no position.
  EXPECT_FALSE(b[2].IsDefined());
  EXPECT_FALSE(root["zzz"].IsDefined());
  EXPECT_TRUE(root["zzz"].Mark().is_null());
  EXPECT_FALSE(root["a"]["x"].IsDefined());  // a scalar has no keys
  EXPECT_EQ(root["b"].Scalar(), "");         // a list has no text
  // Entries in file order.
  std::string keys;
  for (const auto& kv : root) keys += kv.first.Scalar();
  EXPECT_EQ(keys, "ab");
}

TEST(YamlTest, PlainNullsAreNullAndQuotedOnesAreText) {
  Document d = MustParse(
      "a:\nb: ~\nc: null\nd: Null\ne: NULL\nf: \"null\"\ng: ''\nh: nul\n"
      "i: !!null x\n");
  Node r = d.root();
  for (const char* k : {"a", "b", "c", "d", "e", "i"}) {
    EXPECT_TRUE(r[k].IsNull()) << k;
    EXPECT_TRUE(r[k].IsDefined()) << k;
  }
  for (const char* k : {"f", "g", "h"}) EXPECT_TRUE(r[k].IsScalar()) << k;
  EXPECT_EQ(r["f"].Scalar(), "null");
  EXPECT_EQ(r["g"].Scalar(), "");
}

TEST(YamlTest, EmptyTextAndCommentsHaveNoDocument) {
  EXPECT_FALSE(MustParse("").root().IsDefined());
  EXPECT_FALSE(MustParse("# only a comment\n").root().IsDefined());
}

TEST(YamlTest, AnAliasIsTheAnchoredNodeItself) {
  Document d = MustParse("a: &x {k: v}\nb: *x\nc: &l\n  - *l\n");
  Node r = d.root();
  EXPECT_EQ(r["b"]["k"].Scalar(), "v");
  EXPECT_EQ(r["b"].Mark().line, 0);  // where the anchored node is
  // A list holding itself, as yaml-cpp read it (the corpus pins the
  // message this gives).
  EXPECT_TRUE(r["c"][0].IsSequence());
  EXPECT_TRUE(r["c"][0][0][0].IsSequence());
  EXPECT_EQ(ErrorOf("a: *nowhere\n"),
            "t.yaml:1:4: YAML syntax error: the referenced anchor is not "
            "defined");
}

TEST(YamlTest, DuplicateKeysAreKeptAndTheFirstIsFound) {
  Document d = MustParse("a: 1\na: 2\n");
  EXPECT_EQ(d.root().size(), 2u);  // the readers report the second
  EXPECT_EQ(d.root()["a"].Scalar(), "1");
}

TEST(YamlTest, OnlyTheFirstDocumentIsRead) {
  Document d = MustParse("a: 1\n---\nb: 2\n");
  EXPECT_TRUE(d.root()["a"].IsDefined());
  EXPECT_FALSE(d.root()["b"].IsDefined());
}

TEST(YamlTest, NonScalarKeysAreKeptForTheReadersToRefuse) {
  Document d = MustParse("? [a, b]\n: c\n");
  ASSERT_EQ(d.root().size(), 1u);
  EXPECT_TRUE(d.root().Key(0).IsSequence());
  EXPECT_EQ(d.root().Value(0).Scalar(), "c");
}

TEST(YamlTest, HostileNestingIsRefusedAtTheLimit) {
  // libyaml's own loader takes quadratic time here (mesh/config/README.md);
  // the tree stops at the 101st level.
  EXPECT_EQ(ErrorOf(std::string(100000, '[')),
            "t.yaml:1:101: YAML syntax error: nested deeper than 100 levels");
  std::string block;
  for (int i = 0; i < 3000; ++i) block += std::string(i, ' ') + "a:\n";
  EXPECT_EQ(ErrorOf(block),
            "t.yaml:101:101: YAML syntax error: nested deeper than 100 "
            "levels");
  // 100 levels are fine.
  Document d = MustParse(std::string(99, '[') + std::string(99, ']'));
  EXPECT_TRUE(d.root().IsSequence());
}

TEST(YamlTest, SyntaxErrorsSayWhatAndWhere) {
  EXPECT_EQ(ErrorOf("a: [\n"),
            "t.yaml:2:1: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(ErrorOf("a: {b: 1\n"),
            "t.yaml:2:1: YAML syntax error: end of map flow not found");
  EXPECT_EQ(ErrorOf("a: \"x\nb: 1\n"),
            "t.yaml:1:4: YAML syntax error: this quoted string is never "
            "closed");
  EXPECT_EQ(ErrorOf("a: 1\n\tb: 2\n"),
            "t.yaml:2:1: YAML syntax error: illegal tab when looking for "
            "indentation");
  EXPECT_EQ(ErrorOf("a: \"\\q\"\n"),
            "t.yaml:1:7: YAML syntax error: unknown escape character: q");
  EXPECT_EQ(ErrorOf("a: b\n\xff\n"),
            "t.yaml:2:1: YAML syntax error: byte 0xff is not UTF-8 (invalid "
            "leading UTF-8 octet): a config must be UTF-8 text");
  // Anything else: libyaml's own words and context.
  EXPECT_EQ(ErrorOf("a: b: c\n"),
            "t.yaml:1:5: YAML syntax error: mapping values are not allowed "
            "in this context");
}

TEST(YamlTest, ADocumentOutlivesTheTextAndMoves) {
  Document d = [] {
    std::string text = "k: value\n";
    Document tmp = MustParse(text);
    text.assign(text.size(), 'x');
    return tmp;
  }();
  Document moved = std::move(d);
  EXPECT_EQ(moved.root()["k"].Scalar(), "value");
}

}  // namespace
}  // namespace yaml
}  // namespace config
}  // namespace mesh
