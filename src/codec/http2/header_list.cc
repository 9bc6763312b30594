#include "codec/http2/header_list.h"

#include <charconv>

#include "codec/http1/head_parser.h"

namespace usher::http2 {

bool connection_specific(std::string_view name) {
  using http1::iequals;
  return iequals(name, "connection") || iequals(name, "keep-alive") ||
         iequals(name, "proxy-connection") || iequals(name, "transfer-encoding") ||
         iequals(name, "upgrade");
}

void HeaderList::clear() {
  text_.clear();
  fields_.clear();
}

void HeaderList::add(std::string_view name, std::string_view value) {
  Field field{text_.size(), name.size(), 0, value.size()};
  text_.append(name);
  for (size_t i = field.name_at; i < text_.size(); ++i) {
    if (text_[i] >= 'A' && text_[i] <= 'Z') text_[i] = static_cast<char>(text_[i] + 32);
  }
  field.value_at = text_.size();
  text_.append(value);
  fields_.push_back(field);
}

void HeaderList::assign_response(const http1::ResponseHead& head) {
  clear();
  char status[4];
  const auto [end, ec] = std::to_chars(status, status + sizeof status, head.status);
  add(":status", std::string_view(status, static_cast<size_t>(end - status)));
  for (const http1::Header& h : head.headers) {
    if (h.connection_listed || connection_specific(h.name)) continue;
    add(h.name, h.value);
  }
}

bool HeaderList::assign_trailers(std::string_view lines) {
  clear();
  while (!lines.empty()) {
    const size_t eol = lines.find("\r\n");
    const std::string_view line = lines.substr(0, eol);
    lines.remove_prefix(eol == std::string_view::npos ? lines.size() : eol + 2);
    if (line.empty()) continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    const std::string_view name = line.substr(0, colon);
    if (connection_specific(name)) continue;
    add(name, http1::trim_ows(line.substr(colon + 1)));
  }
  return true;
}

const std::vector<nghttp2_nv>& HeaderList::entries() {
  entries_.clear();
  for (const Field& f : fields_) {
    auto* base = reinterpret_cast<uint8_t*>(text_.data());
    entries_.push_back(
        {base + f.name_at, base + f.value_at, f.name_length, f.value_length, NGHTTP2_NV_FLAG_NONE});
  }
  return entries_;
}

}  // namespace usher::http2
