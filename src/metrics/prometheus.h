#pragma once
// Writes the Prometheus text exposition format: families with HELP and TYPE, samples with
// escaped label values.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace usher::metrics {

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class Exposition {
 public:
  explicit Exposition(std::string& out) : out_(out) {}

  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, Labels labels, double value);
  void sample(std::string_view name, Labels labels, uint64_t value);
  // Labels plus one more (le="..." for histogram buckets).
  void sample(std::string_view name, Labels labels,
              std::pair<std::string_view, std::string_view> extra, uint64_t value);

 private:
  void labels(Labels labels, const std::pair<std::string_view, std::string_view>* extra);
  std::string& out_;
};

}  // namespace usher::metrics
