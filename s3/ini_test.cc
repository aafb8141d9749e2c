#include "s3/ini.h"

#include <gtest/gtest.h>

namespace s3cachefs::s3 {
namespace {

TEST(IniTest, SectionsKeysNestingComments) {
  Result<IniFile> ini = ParseIni(
      "# comment\n"
      "[default]\n"
      "Region = eu-west-1  \n"
      "; another\n"
      "[profile dev]\n"
      "s3 =\n"
      "  addressing_style = path\n"
      "  endpoint_url = http://localhost:9000\n"
      "region=us-west-2\r\n"
      "\n"
      "[empty]\n",
      "config");
  ASSERT_TRUE(ini.ok()) << ini.status().ToString();
  EXPECT_EQ(ini->at("default").at("region"), "eu-west-1");
  EXPECT_EQ(ini->at("profile dev").at("s3.addressing_style"), "path");
  EXPECT_EQ(ini->at("profile dev").at("s3.endpoint_url"), "http://localhost:9000");
  EXPECT_EQ(ini->at("profile dev").at("region"), "us-west-2");
  EXPECT_TRUE(ini->at("empty").empty());
}

TEST(IniTest, ValuesMayContainEquals) {
  Result<IniFile> ini = ParseIni("[a]\nsecret = abc/def+ghi==\n", "f");
  ASSERT_TRUE(ini.ok());
  EXPECT_EQ(ini->at("a").at("secret"), "abc/def+ghi==");
}

TEST(IniTest, Errors) {
  EXPECT_EQ(ParseIni("key = v\n", "f").status().code(), EINVAL);
  EXPECT_EQ(ParseIni("[a\n", "f").status().code(), EINVAL);
  Result<IniFile> r = ParseIni("[a]\njunk line\n", "/x/config");
  EXPECT_EQ(r.status().code(), EINVAL);
  EXPECT_NE(r.status().message().find("/x/config:2"), std::string::npos);
}

TEST(IniTest, MissingFileIsEmpty) {
  Result<IniFile> r = ReadIniFile("/nonexistent/dir/credentials");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

}  // namespace
}  // namespace s3cachefs::s3
