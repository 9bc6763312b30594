// The rules of a configuration that hold however it was made: parsed from a file, built from
// the command line (quick mode) or changed through the admin API. The file reader checks only
// form (types, known keys, syntax); everything about meaning is here, once.
#include <set>

#include "balance/picker.h"
#include "config/config.h"

namespace usher::config {

namespace {

class Report {
 public:
  Report(const Config& config, Errors& errors) : source_(config.source), errors_(errors) {}

  // "FILE:LINE:COL: message" at the key's position, or "SOURCE: message" without one.
  void at(const Marks& marks, std::string_view key, const std::string& message) {
    errors_.add(marks.where(source_, key) + message);
  }

 private:
  const std::string& source_;
  Errors& errors_;
};

void validate_algorithm(Report& report, const Pool& pool) {
  const balance::AlgorithmInfo* info = balance::find_algorithm(pool.balance);
  if (!info) {
    std::string names;
    for (const auto& a : balance::algorithms())
      names += (names.empty() ? "" : ", ") + std::string(a.name);
    return report.at(pool.marks, "balance",
                     "unknown balance algorithm '" + pool.balance + "' (available: " + names + ")");
  }
  const std::string uses = "' (hash_key applies to ip-hash, hash and hash-bounded)";
  if (pool.hash_key_given && info->key != balance::KeySource::kHash) {
    report.at(pool.marks, "hash_key",
              "hash_key has no effect with balance '" + pool.balance + uses);
  } else if (pool.hash_key_given && pool.balance == "ip-hash" &&
             pool.hash_key.kind != HashKey::Kind::kClientIp) {
    report.at(pool.marks, "hash_key",
              "ip-hash always hashes the client address; to hash '" + pool.hash_key_text +
                  "' use balance: hash (or hash-bounded)");
  }
  if (pool.hash_balance_factor_given && pool.balance != "hash-bounded") {
    report.at(pool.marks, "hash_balance_factor",
              "hash_balance_factor has no effect with balance '" + pool.balance +
                  "' (it applies to hash-bounded only)");
  }
}

void validate_pool(Report& report, const Pool& pool) {
  validate_algorithm(report, pool);
  if (pool.backends.empty()) {
    report.at(pool.marks, "backends", "pool '" + pool.name + "' has no backends");
  }
  for (const Backend& b : pool.backends) {
    if (std::string problem = weight_problem(b.weight); !problem.empty()) {
      report.at(b.marks, "weight", problem);
    }
  }
  if (pool.outlier && !pool.health) {
    report.at(pool.marks, "outlier",
              "outlier detection needs a 'health' section: ejected backends return through "
              "active checks");
  }
}

void validate_listeners(Report& report, const Config& config) {
  std::set<std::string> names;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const Listener& l = config.listeners[i];
    if (!l.name.empty() && !names.insert(l.name).second) {
      report.at(l.marks, "name", "duplicate listener name '" + l.name + "'");
    }
    for (size_t j = 0; j < i; ++j) {
      if (l.listen.length() && l.listen == config.listeners[j].listen) {
        report.at(l.marks, "listen",
                  "address " + l.listen.to_string() + " is already used by another listener");
      }
    }
  }
}

}  // namespace

std::string weight_problem(uint64_t weight) {
  if (weight >= kMinWeight && weight <= kMaxWeight) return {};
  return "weight must be a whole number from " + std::to_string(kMinWeight) + " to " +
         std::to_string(kMaxWeight);
}

void validate(const Config& config, Errors& errors) {
  Report report(config, errors);
  std::set<std::string> pool_names;
  for (const Pool& pool : config.pools) {
    validate_pool(report, pool);
    if (!pool.name.empty() && !pool_names.insert(pool.name).second) {
      report.at(pool.marks, "name", "duplicate pool name '" + pool.name + "'");
    }
  }
  validate_listeners(report, config);
}

}  // namespace usher::config
