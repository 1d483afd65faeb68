// `qlab results`: list, filter and export what the results store holds.
#include "commands.hpp"

#include <qlab/atomic_write.hpp>
#include <qlab/report.hpp>
#include <qlab/slurm.hpp>
#include <qlab/store.hpp>
#include <qlab/sweep.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <memory>

namespace qlab::cli {
namespace {

struct ResultsArgs {
  std::string db = kDefaultDb;
  RowFilter filter;
  std::string format = "table";
  std::string output;
};

std::string table(const std::vector<PointRecord>& points) {
  std::string out;
  for (const auto& p : points) {
    out += fmt::format("{} {:<7} {} {}\n", p.hash, to_string(p.status), p.sweep, p.label);
    if (p.status != PointStatus::ok) out += fmt::format("    {}\n", p.message);
  }
  const auto rows = rows_of(points);
  std::vector<nlohmann::json> measured;
  for (const auto& r : rows)
    if (r["point"]["status"] == "ok") measured.push_back(r);
  if (!measured.empty()) out += "\n" + format_rows(measured);
  return out;
}

// `qlab results merge`: the shards Slurm tasks wrote, into the store.
void add_merge_command(CLI::App& results, int& exit_code) {
  struct MergeArgs {
    std::string db = kDefaultDb;
    std::string shards = ".qlab/shards";
  };
  auto args = std::make_shared<MergeArgs>();
  auto* cmd = results.add_subcommand(
      "merge", "Import the per-point shards of a Slurm sweep into the results store (idempotent)");
  cmd->add_option("--db", args->db, "results store (SQLite)")->capture_default_str();
  cmd->add_option("--shards", args->shards, "folder of shards")->capture_default_str();
  cmd->callback([args, &exit_code] {
    if (!std::filesystem::is_directory(args->shards))
      throw Error(fmt::format("{}: no shards folder here (pass --shards)", args->shards));
    ResultStore store(args->db);
    const MergeSummary m = merge_shards(store, args->shards);
    fmt::print("{}: {}\n", args->db, describe(m));
    for (const auto& p : m.problems) fmt::print(stderr, "qlab: shard not merged: {}\n", p);
    exit_code = m.problems.empty() ? 0 : 1;
  });
}

}  // namespace

void add_results_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<ResultsArgs>();
  auto* cmd = app.add_subcommand("results", "List, filter and export stored results");
  cmd->add_option("--db", args->db, "results store (SQLite)")->capture_default_str();
  cmd->add_option("--sweep", args->filter.sweep, "only points of this sweep");
  cmd->add_option("--model", args->filter.model, "only this model");
  cmd->add_option("--quantizer", args->filter.quantizer, "only this quantizer (none: float only)");
  cmd->add_option("--backend", args->filter.backend, "only this backend");
  cmd->add_option("--status", args->filter.status, "only points with this status")
      ->check(CLI::IsMember({"ok", "failed", "skipped"}));
  cmd->add_option("--format", args->format, "table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}))
      ->capture_default_str();
  cmd->add_option("-o,--output", args->output, "write to this file instead of standard output");
  cmd->callback([args, cmd, &exit_code] {
    if (!cmd->get_subcommands().empty()) return;  // `results merge` did the work
    if (!std::filesystem::exists(args->db))
      throw Error(fmt::format("{}: no results store here (run `qlab sweep` first, or pass --db)",
                              args->db));
    ResultStore store(args->db);
    const auto points = store.points(args->filter);
    std::string text;
    if (args->format == "csv")
      text = rows_csv(rows_of(points));
    else if (args->format == "json")
      text = nlohmann::json{{"rows", rows_of(points)}}.dump(2) + "\n";
    else
      text = table(points);
    if (args->output.empty())
      fmt::print("{}", text);
    else
      write_atomically(args->output, text);
    exit_code = 0;
  });
  add_merge_command(*cmd, exit_code);
}

}  // namespace qlab::cli
