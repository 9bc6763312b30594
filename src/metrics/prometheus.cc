#include "metrics/prometheus.h"

#include <fmt/format.h>

#include <iterator>

namespace usher::metrics {

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void Exposition::labels(Labels labels, const std::pair<std::string_view, std::string_view>* extra) {
  if (labels.size() == 0 && !extra) return;
  out_ += '{';
  bool first = true;
  auto one = [&](std::string_view name, std::string_view value) {
    if (!first) out_ += ',';
    first = false;
    out_.append(name);
    out_ += "=\"";
    for (char c : value) {
      if (c == '\\' || c == '"') {
        out_ += '\\';
        out_ += c;
      } else if (c == '\n') {
        out_ += "\\n";
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  };
  for (const auto& [name, value] : labels) one(name, value);
  if (extra) one(extra->first, extra->second);
  out_ += '}';
}

void Exposition::sample(std::string_view name, Labels labels, double value) {
  out_.append(name);
  this->labels(labels, nullptr);
  fmt::format_to(std::back_inserter(out_), " {}\n", value);
}

void Exposition::sample(std::string_view name, Labels labels, uint64_t value) {
  out_.append(name);
  this->labels(labels, nullptr);
  fmt::format_to(std::back_inserter(out_), " {}\n", value);
}

void Exposition::sample(std::string_view name, Labels labels,
                        std::pair<std::string_view, std::string_view> extra, uint64_t value) {
  out_.append(name);
  this->labels(labels, &extra);
  fmt::format_to(std::back_inserter(out_), " {}\n", value);
}

}  // namespace usher::metrics
