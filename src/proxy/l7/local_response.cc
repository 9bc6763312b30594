#include "proxy/l7/local_response.h"

#include <algorithm>
#include <iterator>

#include "proxy/l7/head_buffer.h"

namespace usher::proxy::l7 {

std::string_view reason_phrase(int status) {
  struct Phrase {
    int status;
    std::string_view text;
  };
  static constexpr Phrase kPhrases[] = {
      {200, "OK"},
      {201, "Created"},
      {202, "Accepted"},
      {204, "No Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {303, "See Other"},
      {304, "Not Modified"},
      {307, "Temporary Redirect"},
      {308, "Permanent Redirect"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {410, "Gone"},
      {413, "Content Too Large"},
      {414, "URI Too Long"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
  };
  auto it = std::find_if(std::begin(kPhrases), std::end(kPhrases),
                         [status](const Phrase& p) { return p.status == status; });
  return it == std::end(kPhrases) ? "Status" : it->text;
}

size_t write_local_response(const LocalResponse& r, char* out, size_t capacity) {
  HeadBuffer w(out, capacity);
  const bool bodiless = r.status == 204 || r.status == 304;
  std::string_view body = bodiless ? std::string_view() : r.body;
  w << "HTTP/1.1 " << static_cast<uint64_t>(r.status) << " " << reason_phrase(r.status) << "\r\n";
  if (!r.location.empty()) {
    w << "Location: ";
    for (std::string_view part : r.location) w << part;
    w << "\r\n";
  }
  if (!body.empty()) w << "Content-Type: " << r.content_type << "\r\n";
  if (!bodiless) w << "Content-Length: " << body.size() << "\r\n";
  if (!r.request_id.empty()) w << "X-Request-Id: " << r.request_id << "\r\n";
  w << r.fields;
  if (r.close) w << "Connection: close\r\n";
  w << "Via: 1.1 usher\r\n\r\n";
  if (!r.head_only) w << body;
  return w.finish();
}

}  // namespace usher::proxy::l7
