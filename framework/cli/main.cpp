// qlab: the command line. Every error a user can cause ends here as one line
// on stderr and a non-zero exit.
#include "commands.hpp"

#include <qlab/error.hpp>
#include <qlab/version.hpp>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/version.h>

int main(int argc, char** argv) {
  CLI::App app{"qlab: neural-network quantization experiments on LibTorch"};
  app.set_version_flag(
      "--version", std::string("qlab ") + qlab::version() + " (LibTorch " + TORCH_VERSION + ")");
  app.require_subcommand(1);
  int exit_code = 0;
  qlab::cli::add_plugins_command(app, exit_code);
  qlab::cli::add_run_command(app, exit_code);
  qlab::cli::add_export_command(app, exit_code);
  qlab::cli::add_print_command(app, exit_code);
  qlab::cli::add_sweep_command(app, exit_code);
  qlab::cli::add_report_command(app, exit_code);
  qlab::cli::add_results_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const qlab::Interrupted& e) {
    fmt::print(stderr, "qlab: {}\n", e.what());
    return 130;  // the shell's code for a command ended by SIGINT
  } catch (const qlab::Error& e) {
    fmt::print(stderr, "qlab: error: {}\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "qlab: LibTorch error: {}\n", e.what_without_backtrace());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "qlab: internal error: {}\n", e.what());
    return 2;
  }
  return exit_code;
}
