// Per-request cost of route matching as the number of host routes grows: the table indexes
// hosts, so 1000 host routes should cost what 10 do. Run: build/bench/route_bench
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "route/fields.h"
#include "route/table.h"

namespace {

using usher::config::Route;
using usher::config::StringMatch;

// `hosts` exact-host routes, a few suffix and prefix routes, then path routes and a default.
std::vector<Route> make_routes(int hosts) {
  std::vector<Route> routes;
  for (int i = 0; i < hosts; ++i) {
    Route r;
    r.match.host = "host" + std::to_string(i) + ".example.com";
    r.match.path = StringMatch{StringMatch::Kind::kPrefix, "/app/"};
    routes.push_back(r);
  }
  for (std::string host : {"*.cdn.example.net", "*.example.org", "admin.*"}) {
    Route r;
    r.match.host = host;
    routes.push_back(r);
  }
  Route api;
  api.match.path = StringMatch{StringMatch::Kind::kPrefix, "/api/"};
  routes.push_back(api);
  routes.push_back(Route{});
  return routes;
}

void match_host(benchmark::State& state, const std::string& host, const std::string& target) {
  const std::vector<Route> routes = make_routes(static_cast<int>(state.range(0)));
  const usher::route::Table table(routes);
  char buffer[usher::route::kMaxHost];
  for (auto _ : state) {
    usher::route::RequestView view{"GET", usher::route::normalize_host(host, buffer), {}, {}, {}};
    usher::route::split_target(target, view.path, view.query);
    benchmark::DoNotOptimize(table.match(view));
  }
}

// A request for the last host route, which a linear scan would reach last.
void BM_LastHostRoute(benchmark::State& state) {
  match_host(state, "Host" + std::to_string(state.range(0) - 1) + ".example.com:8080",
             "/app/index.html?x=1");
}
// A host no route names: falls through to the path routes and the default.
void BM_UnknownHost(benchmark::State& state) {
  match_host(state, "www.elsewhere.test", "/api/users");
}
// A wildcard host: suffix lookups at every label.
void BM_WildcardHost(benchmark::State& state) {
  match_host(state, "img.eu.cdn.example.net", "/logo.png");
}

BENCHMARK(BM_LastHostRoute)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_UnknownHost)->Arg(10)->Arg(1000)->Arg(100000);
BENCHMARK(BM_WildcardHost)->Arg(10)->Arg(1000)->Arg(100000);

}  // namespace

BENCHMARK_MAIN();
