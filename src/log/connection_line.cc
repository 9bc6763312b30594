// The access-log line of a layer-4 connection.
#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "log/access_log.h"
#include "log/line_writer.h"

namespace usher::log {

namespace {

void json_connection(const ConnectionRecord& r, int64_t millis, const SecondText& clock,
                     std::string& out) {
  const std::string_view texts[] = {r.client,  r.listener, r.route, r.pool,
                                    r.backend, r.sni,      r.end,   r.failure};
  size_t most = 384;  // keys, punctuation, the time and four numbers
  for (std::string_view text : texts) most += LineWriter::json_bound(text.size());
  LineWriter line(out, most);
  line.put(R"({"time":")");
  line.put(clock.iso);
  line.fraction(static_cast<unsigned>(millis % 1000));
  line.put(R"(Z","protocol":"tcp")");
  line.text_field(R"(,"client":)", r.client);
  line.number_field(R"(,"bytes_sent":)", r.bytes_to_client);
  line.number_field(R"(,"bytes_received":)", r.bytes_from_client);
  line.millis_field(R"(,"duration_ms":)", std::max(r.duration_seconds, 0.0));
  line.millis_field(R"(,"connect_ms":)", r.connect_seconds);
  line.text_field(R"(,"end":)", r.end);
  line.text_field(R"(,"listener":)", r.listener);
  line.text_field(R"(,"route":)", r.route);
  line.text_field(R"(,"pool":)", r.pool);
  line.text_field(R"(,"backend":)", r.backend);
  if (!r.sni.empty()) line.text_field(R"(,"sni":)", r.sni);
  if (!r.failure.empty()) line.text_field(R"(,"failure":)", r.failure);
  line.put("}\n");
}

// $remote_addr [$time_local] TCP $end $bytes_sent $bytes_received $session_time "$backend"
void basic_connection(const ConnectionRecord& r, const SecondText& clock, std::string& out) {
  auto it = std::back_inserter(out);
  combined_string(out, r.client);
  fmt::format_to(it, " [{}] TCP ", clock.combined);
  combined_string(out, r.end);
  fmt::format_to(it, " {} {} {:.3f} \"", r.bytes_to_client, r.bytes_from_client,
                 r.duration_seconds);
  combined_string(out, r.backend);
  out += "\"\n";
}

}  // namespace

void format_connection_line(config::AccessLog::Format format, const ConnectionRecord& record,
                            int64_t millis, const SecondText& clock, std::string& out) {
  if (format == config::AccessLog::Format::kJson) {
    json_connection(record, millis, clock, out);
  } else {
    basic_connection(record, clock, out);
  }
}

}  // namespace usher::log
