// Shards: one JSON file per point, written by the job-array task that ran
// it. A file per point is what a shared cluster folder (NFS, Lustre) does
// well; an SQLite database written from many nodes at once is not.

#include <qlab/atomic_write.hpp>
#include <qlab/error.hpp>
#include <qlab/slurm.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace qlab {
namespace {

namespace fs = std::filesystem;
constexpr const char* kShardFormat = "qlab-shard-1";

}  // namespace

std::string write_shard(const std::string& dir, const PointRecord& point,
                        const std::vector<std::string>& sweeps) {
  const std::string path = (fs::path(dir) / (point.hash + ".json")).string();
  const nlohmann::json doc = {
      {"format", kShardFormat}, {"point", to_json(point)}, {"sweeps", sweeps}};
  write_atomically(path, doc.dump(1) + "\n");
  return path;
}

std::string describe(const MergeSummary& m) {
  return fmt::format("{} stored, {} already there, {} kept (an ok record over a failed shard)",
                     m.added, m.unchanged, m.kept);
}

MergeSummary merge_shards(ResultStore& store, const std::string& dir) {
  MergeSummary summary;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return summary;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".json")
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    PointRecord shard;
    std::vector<std::string> sweeps;
    try {
      std::ifstream in(file, std::ios::binary);
      const auto doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (!doc.is_object() || doc.value("format", "") != kShardFormat)
        throw Error(fmt::format("{}: not a qlab shard (no \"format\": \"{}\")", file.string(),
                                kShardFormat));
      shard = point_from_json(doc["point"], file.string());
      if (file.stem() != shard.hash)
        throw Error(fmt::format("{}: holds point {}, not the point its name says", file.string(),
                                shard.hash));
      if (doc.contains("sweeps") && doc["sweeps"].is_array())
        for (const auto& s : doc["sweeps"])
          if (s.is_string()) sweeps.push_back(s.get<std::string>());
    } catch (const Error& e) {
      summary.problems.push_back(e.what());
      continue;
    }
    const auto stored = store.find(shard.hash);
    if (stored && stored->status == PointStatus::ok && shard.status != PointStatus::ok) {
      ++summary.kept;
    } else if (stored && stored->status == shard.status && stored->ended == shard.ended &&
               stored->started == shard.started) {
      ++summary.unchanged;
    } else {
      store.save(shard);
      ++summary.added;
    }
    for (const auto& s : sweeps) store.add_to_sweep(s, shard.hash);
  }
  return summary;
}

}  // namespace qlab
