#include "admin/metrics_page.h"

#include "base/version.h"
#include "metrics/prometheus.h"

namespace usher::admin {

namespace {

// One gauge or counter family with a sample per backend.
template <typename Read>
void per_backend(metrics::Exposition& e, const proxy::Generation& generation, std::string_view name,
                 std::string_view type, std::string_view help, Read read) {
  e.family(name, type, help);
  for (const auto& pool : generation.pools) {
    pool->for_each_member([&](uint32_t i) {
      e.sample(name, {{"pool", pool->config.name}, {"backend", pool->slot(i).name}},
               static_cast<uint64_t>(read(pool->live[i])));
    });
  }
}

}  // namespace

// Seconds until each certificate expires: below 0 once it has.
void certificate_expiry(metrics::Exposition& e, const std::vector<tls::CertificateInfo>& certs) {
  e.family("usher_tls_certificate_expiry_seconds", "gauge",
           "Seconds until the certificate expires (negative once it has), by listener and file.");
  const std::time_t now = std::time(nullptr);
  for (const tls::CertificateInfo& cert : certs) {
    e.sample("usher_tls_certificate_expiry_seconds",
             {{"listener", cert.listener}, {"name", cert.file}},
             static_cast<double>(cert.not_after - now));
  }
}

std::string metrics_page(const metrics::Registry& registry, const proxy::Generation& generation,
                         const Control& control, const log::AccessLog* access_log) {
  const Control::ReloadCounts reloads = control.reload_counts();
  std::string out;
  metrics::Exposition e(out);
  e.family("usher_build_info", "gauge", "Build of the running usher; always 1.");
  e.sample("usher_build_info", {{"version", kVersion}}, uint64_t{1});
  e.family("usher_config_generation", "gauge",
           "The configuration generation being served: 1 at start, one more per applied reload.");
  e.sample("usher_config_generation", {}, generation.number);
  e.family("usher_config_reloads_total", "counter", "Reloads asked for, by result.");
  e.sample("usher_config_reloads_total", {{"result", "success"}}, reloads.success);
  e.sample("usher_config_reloads_total", {{"result", "failure"}}, reloads.failure);
  e.family("usher_discovery_failures_total", "counter",
           "DNS answers and discovery files that could not be used (the pool kept its backends).");
  for (const auto& [pool, count] : control.discovery_failures()) {
    e.sample("usher_discovery_failures_total", {{"pool", pool}}, count);
  }
  using Live = balance::BackendLive;
  constexpr auto relaxed = std::memory_order_relaxed;
  per_backend(e, generation, "usher_backend_up", "gauge",
              "1 while health checks (or the absence of them) keep the backend in its pool.",
              [](const Live& b) { return b.healthy.load(relaxed); });
  per_backend(e, generation, "usher_backend_draining", "gauge",
              "1 while the backend is drained by the admin API.",
              [](const Live& b) { return b.admin_state.load(relaxed) == balance::kDraining; });
  per_backend(e, generation, "usher_backend_disabled", "gauge",
              "1 while the backend is disabled by the admin API.",
              [](const Live& b) { return b.admin_state.load(relaxed) == balance::kDisabled; });
  per_backend(e, generation, "usher_backend_active_requests", "gauge",
              "Requests in flight on the backend, over all workers.",
              [](const Live& b) { return b.active.load(relaxed); });
  per_backend(e, generation, "usher_backend_ejections_total", "counter",
              "Times passive checks ejected the backend.",
              [](const Live& b) { return b.ejections.load(relaxed); });
  e.family("usher_backend_health_transitions_total", "counter",
           "Health state changes decided by active checks.");
  for (const auto& pool : generation.pools) {
    pool->for_each_member([&](uint32_t i) {
      const std::string& backend = pool->slot(i).name;
      e.sample("usher_backend_health_transitions_total",
               {{"pool", pool->config.name}, {"backend", backend}, {"to", "down"}},
               uint64_t{pool->live[i].went_down.load(relaxed)});
      e.sample("usher_backend_health_transitions_total",
               {{"pool", pool->config.name}, {"backend", backend}, {"to", "up"}},
               uint64_t{pool->live[i].went_up.load(relaxed)});
    });
  }
  e.family("usher_pool_locality_share", "gauge",
           "Share of a locality-aware pool's requests each tier takes now (zone, region, other): "
           "below 1 for the first tier while it spills.");
  for (const auto& pool : generation.pools) {
    const auto loads = pool->balancer().tier_loads(pool->live);
    if (!loads) continue;
    for (size_t t = 0; t < balance::kTiers; ++t) {
      if ((*loads)[t].backends == 0) continue;
      e.sample("usher_pool_locality_share",
               {{"pool", pool->config.name},
                {"tier", balance::tier_name(static_cast<balance::Tier>(t))}},
               (*loads)[t].share);
    }
  }
  if (const auto certs = control.certificates(); !certs.empty()) certificate_expiry(e, certs);
  if (access_log) {
    e.family("usher_access_log_lines_total", "counter", "Access log lines produced.");
    e.sample("usher_access_log_lines_total", {}, access_log->lines());
    e.family("usher_access_log_dropped_lines_total", "counter",
             "Access log lines dropped because the writer or the file could not keep up.");
    e.sample("usher_access_log_dropped_lines_total", {}, access_log->dropped());
  }
  const Control::TraceCounts traces = control.trace_counts();
  e.family("usher_trace_spans_exported_total", "counter", "Spans the tracing collector accepted.");
  e.sample("usher_trace_spans_exported_total", {}, traces.exported);
  e.family("usher_trace_spans_dropped_total", "counter",
           "Spans dropped: no room in a worker's queue, or the collector was down, slow or "
           "refused them.");
  e.sample("usher_trace_spans_dropped_total", {}, traces.dropped);
  e.family("usher_trace_export_failures_total", "counter",
           "Batches of spans the collector did not take (unreachable, no answer in time, or "
           "an error status).");
  e.sample("usher_trace_export_failures_total", {}, traces.export_failures);
  if (const Control::ClusterCounts cluster = control.cluster_counts(); cluster.configured) {
    e.family("usher_cluster_redis_up", "gauge",
             "1 while the cluster's Redis answers; 0 while cluster-wide limits fall back "
             "(cluster.on_redis_failure).");
    e.sample("usher_cluster_redis_up", {}, uint64_t{cluster.redis_up});
    e.family("usher_cluster_redis_round_trips_total", "counter",
             "Round trips to the cluster's Redis (each carries every lease ask of its moment).");
    e.sample("usher_cluster_redis_round_trips_total", {}, cluster.round_trips);
    e.family(
        "usher_cluster_leases_total", "counter",
        "Answers to lease asks of cluster-wide rate limits, by whether allowance was granted.");
    e.sample("usher_cluster_leases_total", {{"result", "granted"}}, cluster.leases_granted);
    e.sample("usher_cluster_leases_total", {{"result", "refused"}}, cluster.leases_refused);
  }
  registry.write_prometheus(out, generation.metrics_layout());
  return out;
}

}  // namespace usher::admin
