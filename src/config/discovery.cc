// A pool's backends from a file of their own, `discovery: { file: PATH }`: the same list
// `backends:` takes, which an autoscaler or a deploy tool rewrites and renames into place. The
// file is read with the configuration (start, `usher check`, reload) and again whenever it
// changes (src/discovery).
#include <filesystem>

#include "config/reader.h"

namespace usher::config {

namespace {

std::vector<Backend> read_list(Reader& r, const YAML::Node& root) {
  std::vector<Backend> backends;
  if (root.IsNull() || (root.IsSequence() && root.size() == 0)) {
    r.error(root.Mark(), "the backend list is empty: a pool keeps at least one backend");
  } else if (r.expect_sequence(root, "the backend list")) {
    for (const auto& node : root) backends.push_back(read_backend(r, node));
  }
  return backends;
}

}  // namespace

Expected<std::vector<Backend>> load_backend_list(const std::string& path, Errors& errors) {
  const size_t before = errors.messages.size();
  const std::optional<std::string> text = read_file(path, errors);
  if (!text) return Error{errors.messages.back()};
  Reader reader(path, errors);
  const std::optional<YAML::Node> root = reader.parse(*text);
  if (!root) return Error{errors.messages.back()};
  std::vector<Backend> backends;
  try {
    backends = read_list(reader, *root);
  } catch (const YAML::Exception& e) {
    reader.error(e.mark, e.msg);
  }
  if (errors.messages.size() > before) return Error{errors.messages[before]};
  return backends;
}

void read_pool_discovery(Reader& r, const YAML::Node& node, Pool& pool) {
  if (!r.expect_map(node, "discovery")) return;
  r.check_keys(node, {"file"}, "discovery");
  if (node.size() == 0 || !node["file"]) return r.error(node.Mark(), "discovery needs a 'file'");
  std::string file;
  if (!r.scalar(node["file"], "discovery file", file)) return;
  if (file.empty()) return r.error(node["file"].Mark(), "discovery file must not be empty");
  if (pool.marks.has("backends")) {
    return r.error(node.Mark(),
                   "a pool takes its backends from 'backends' or from 'discovery', not both");
  }
  // Relative to the configuration file, as a deploy tool writes both side by side.
  const std::filesystem::path path(file);
  pool.discovery_file =
      path.is_absolute() ? file : (std::filesystem::path(r.file()).parent_path() / path).string();
  if (auto backends = load_backend_list(pool.discovery_file, r.errors())) {
    pool.backends = std::move(*backends);
  }
}

}  // namespace usher::config
