#include "app/geoip.h"

namespace usher::app {

Expected<std::shared_ptr<const geo::Database>> open_geoip(const config::Config& config) {
  if (!config.geoip) return std::shared_ptr<const geo::Database>();
  auto database = geo::Database::open(config.geoip->database);
  if (!database) {
    return Error{config.geoip->marks.where(config.source, "database") + database.error().message};
  }
  return std::move(*database);
}

}  // namespace usher::app
