#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace usher::config {
namespace {

struct Loaded {
  bool ok;
  Config config;
  std::vector<std::string> errors;
};

Loaded load(const std::string& tracing) {
  Errors errors;
  const std::string yaml = tracing +
                           "\nlisteners:\n  - { listen: 127.0.0.1:8080, pool: web }\n"
                           "pools:\n  - { name: web, backends: [127.0.0.1:9001] }\n";
  auto config = load_string(yaml, "usher.yaml", errors);
  return {config.ok(), config.ok() ? *config : Config{}, errors.messages};
}

TEST(TracingConfig, ReadsTheCollectorAndTheSampling) {
  const Loaded l =
      load("tracing: { otlp: http://127.0.0.1:4318/v1/traces, sample: 0.1, slow: 250ms }");
  ASSERT_TRUE(l.ok) << l.errors.front();
  ASSERT_TRUE(l.config.tracing);
  const Tracing& t = *l.config.tracing;
  EXPECT_EQ(t.collector.to_string(), "127.0.0.1:4318");
  EXPECT_EQ(t.authority, "127.0.0.1:4318");
  EXPECT_EQ(t.path, "/v1/traces");
  EXPECT_DOUBLE_EQ(t.sample, 0.1);
  EXPECT_EQ(t.slow, Millis(250));
}

TEST(TracingConfig, DefaultsAndOtherForms) {
  const Loaded l = load("tracing: { otlp: \"http://[::1]:4318\" }");
  ASSERT_TRUE(l.ok) << l.errors.front();
  EXPECT_EQ(l.config.tracing->path, "/v1/traces");
  EXPECT_EQ(l.config.tracing->collector.to_string(), "[::1]:4318");
  EXPECT_DOUBLE_EQ(l.config.tracing->sample, 1.0);
  EXPECT_EQ(l.config.tracing->slow, Millis(1000));
  const Loaded port80 = load("tracing: { otlp: http://localhost/otlp/v1/traces, sample: 0 }");
  ASSERT_TRUE(port80.ok) << port80.errors.front();
  EXPECT_EQ(port80.config.tracing->collector.to_string(), "127.0.0.1:80");
  EXPECT_EQ(port80.config.tracing->authority, "localhost");
  EXPECT_EQ(port80.config.tracing->path, "/otlp/v1/traces");
  EXPECT_DOUBLE_EQ(port80.config.tracing->sample, 0.0);
  EXPECT_FALSE(load("").config.tracing);
}

TEST(TracingConfig, BadValuesAreErrorsAtTheirPlace) {
  auto first_error = [](const std::string& text) {
    const Loaded l = load(text);
    EXPECT_FALSE(l.ok) << text;
    return l.errors.empty() ? std::string() : l.errors.front();
  };
  EXPECT_EQ(first_error("tracing: { otlp: https://127.0.0.1:4318/v1/traces }"),
            "usher.yaml:1:18: otlp: https is not supported; give the collector's plain http:// "
            "URL (a local agent or collector sidecar)");
  EXPECT_EQ(first_error("tracing: { otlp: grpc://127.0.0.1:4317 }"),
            "usher.yaml:1:18: otlp must be an http:// URL such as "
            "http://127.0.0.1:4318/v1/traces, not 'grpc://127.0.0.1:4317'");
  EXPECT_EQ(first_error("tracing: { otlp: \"http://collector.internal:4318/v1/traces\" }"),
            "usher.yaml:1:18: otlp: invalid address 'collector.internal:4318': host must be an IP "
            "literal or localhost");
  EXPECT_EQ(first_error("tracing: { otlp: \"http://:4318/v1/traces\" }"),
            "usher.yaml:1:18: otlp: the URL needs a collector address (http://HOST:PORT/PATH), "
            "not 'http://:4318/v1/traces'");
  EXPECT_EQ(first_error("tracing: { otlp: \"http://127.0.0.1:4318/v1/traces?x=1\" }"),
            "usher.yaml:1:18: otlp: the URL's path may not hold spaces, control characters, a "
            "query or a fragment");
  for (const char* ratio : {"1.5", "-0.1", "nan", "inf", "ten", "\"\"", "0.5x"}) {
    EXPECT_EQ(
        first_error(std::string("tracing: { otlp: http://127.0.0.1:4318, sample: ") + ratio + " }"),
        std::string("usher.yaml:1:49: sample must be a ratio from 0 to 1 (0.1 samples one "
                    "trace in ten), not '") +
            (std::string(ratio) == "\"\"" ? "" : ratio) + "'");
  }
  EXPECT_EQ(first_error("tracing: { otlp: http://127.0.0.1:4318, slow: 0s }"),
            "usher.yaml:1:47: slow must be above 0");
  EXPECT_EQ(first_error("tracing: { sample: 0.5 }"),
            "usher.yaml:1:10: tracing needs 'otlp', the collector's URL "
            "(http://HOST:PORT/v1/traces)");
  EXPECT_EQ(first_error("tracing: { otlp: http://127.0.0.1:4318, rate: 1 }"),
            "usher.yaml:1:41: unknown key 'rate' in tracing (known: otlp, sample, slow)");
  EXPECT_EQ(first_error("tracing: on"), "usher.yaml:1:10: tracing must be a mapping");
}

}  // namespace
}  // namespace usher::config
