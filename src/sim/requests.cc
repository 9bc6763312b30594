#include "sim/requests.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace usher::sim {

namespace {

class Sampler {
 public:
  Sampler(const Distribution& d, std::mt19937_64& rng) : d_(d), rng_(rng) {}
  double next() {
    switch (d_.kind) {
      case Distribution::Kind::kConstant:
        return d_.a;
      case Distribution::Kind::kExponential:
        return std::exponential_distribution<double>(1 / d_.a)(rng_);
      case Distribution::Kind::kLognormal:
        return std::lognormal_distribution<double>(std::log(d_.a), d_.b)(rng_);
      case Distribution::Kind::kBimodal:
        return std::bernoulli_distribution(d_.p)(rng_) ? d_.b : d_.a;
      case Distribution::Kind::kUniform:
        return std::uniform_real_distribution<double>(d_.a, d_.b)(rng_);
    }
    return d_.a;
  }

 private:
  Distribution d_;
  std::mt19937_64& rng_;
};

}  // namespace

Expected<std::vector<Request>> make_requests(const Scenario& s, std::mt19937_64& rng) {
  std::vector<Request> requests;
  if (!s.trace_file.empty()) {
    std::ifstream in(s.trace_file);
    if (!in) return Error{"cannot open trace file " + s.trace_file};
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
      std::istringstream fields(line);
      Request r{};
      char comma1 = 0, comma2 = 0;
      if (!(fields >> r.arrival_s >> comma1 >> r.duration_s >> comma2 >> r.key) || comma1 != ',' ||
          comma2 != ',') {
        return Error{s.trace_file + ":" + std::to_string(n) +
                     ": expected arrival_s,duration_s,key"};
      }
      requests.push_back(r);
    }
    std::stable_sort(requests.begin(), requests.end(),
                     [](const Request& a, const Request& b) { return a.arrival_s < b.arrival_s; });
    return requests;
  }
  Sampler duration(s.duration, rng);
  std::exponential_distribution<double> gap(s.arrival_rate);
  std::vector<double> zipf_cdf;
  if (s.zipf_s > 0) {
    double total = 0;
    for (uint64_t k = 1; k <= s.keys; ++k)
      zipf_cdf.push_back(total += 1 / std::pow(static_cast<double>(k), s.zipf_s));
    for (double& c : zipf_cdf) c /= total;
  }
  std::uniform_int_distribution<uint64_t> uniform_key(0, s.keys - 1);
  std::uniform_real_distribution<double> unit(0, 1);
  double t = 0;
  requests.reserve(s.requests);
  for (uint64_t i = 0; i < s.requests; ++i) {
    t += gap(rng);
    uint64_t key =
        zipf_cdf.empty()
            ? uniform_key(rng)
            : static_cast<uint64_t>(std::lower_bound(zipf_cdf.begin(), zipf_cdf.end(), unit(rng)) -
                                    zipf_cdf.begin());
    requests.push_back({t, duration.next(), key});
  }
  return requests;
}

}  // namespace usher::sim
