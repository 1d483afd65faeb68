#pragma once
#include <qlab/registry.hpp>

#include <CLI/CLI.hpp>

namespace qlab::cli {

/// The results store of the project folder, unless --db / --from names one.
constexpr const char* kDefaultDb = ".qlab/results.sqlite";

/// The plugins of this build and QLAB_PLUGIN_PATH; every refused file is
/// one warning line on stderr, with the reason.
Registry discover_plugins();

/// Each command adds its subcommand to `app`; the callback runs it and sets
/// `exit_code`.
void add_plugins_command(CLI::App& app, int& exit_code);
void add_run_command(CLI::App& app, int& exit_code);
void add_export_command(CLI::App& app, int& exit_code);
void add_print_command(CLI::App& app, int& exit_code);
void add_sweep_command(CLI::App& app, int& exit_code);
void add_report_command(CLI::App& app, int& exit_code);
void add_results_command(CLI::App& app, int& exit_code);

}  // namespace qlab::cli
