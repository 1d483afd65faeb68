#include "experiment/resolve.hpp"

#include <qlab/error.hpp>
#include <qlab/plugin/data.hpp>

#include "experiment/stable_hash.hpp"

#include <fmt/format.h>

#include <fstream>

namespace qlab {
namespace {

std::string required_name(const RawSection& s, const std::string& fallback) {
  auto it = s.values.find("name");
  if (it == s.values.end()) {
    if (!fallback.empty()) return fallback;
    throw Error(fmt::format("{}: [{}] name is required (a plugin name; `qlab plugins` lists them)",
                            s.where.str(), s.name));
  }
  if (const auto* str = std::get_if<std::string>(&it->second.value)) return *str;
  throw Error(fmt::format("{}: [{}] name: expected string, found {}", it->second.where.str(),
                          s.name, describe(it->second.value)));
}

// [model] weights, checked to be a file that exists; its bytes become part
// of the experiment's identity below, so an edited file is a new result.
std::string weights_file(const RawSection& s) {
  auto it = s.values.find("weights");
  if (it == s.values.end()) return "";
  const auto* path = std::get_if<std::string>(&it->second.value);
  if (!path)
    throw Error(fmt::format(
        "{}: [model] weights: expected string (a .safetensors or torch.save file), found {}",
        it->second.where.str(), describe(it->second.value)));
  if (!std::ifstream(*path))
    throw Error(fmt::format("{}: [model] weights: no such file {}", it->second.where.str(), *path));
  return *path;
}

Schema metrics_schema() {
  Schema s;
  s.string_list("names", {"accuracy", "loss"}, "metric plugins to run, in order")
      .integer("batch_size", 64, "batch size for latency and memory", 1, 1 << 16);
  return s;
}

}  // namespace

std::string at(const RawSection& s, const std::string& key) {
  auto it = s.values.find(key);
  return (it != s.values.end() ? it->second.where : s.where).str();
}

Resolved resolve_experiment(const Experiment& ex, const Registry& registry) {
  Resolved r;
  r.model_name = required_name(ex.model, "");
  try {
    r.model = registry.model(r.model_name);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: [model] name: {}", at(ex.model, "name"), e.what()));
  }
  r.model_opts = resolve(r.model->options(), ex.model, {"name", "weights"});
  r.weights = weights_file(ex.model);

  Schema data_schema = dataset_schema();
  data_schema.string("name", "fashion-mnist", "dataset",
                     {"fashion-mnist", "mnist", "cifar10", "cifar100"});
  r.data_opts = resolve(data_schema, ex.dataset);
  r.data_cfg = dataset_config(r.data_opts);
  r.data_cfg.name = r.data_opts.get<std::string>("name");
  if (!r.data_cfg.mean.empty() || !r.data_cfg.std.empty()) {
    try {
      const Shape native = native_shape(r.data_cfg);
      check_normalization(r.data_cfg, r.data_cfg.name, native[0],
                          r.model->input_shape(native, r.model_opts)[0]);
    } catch (const Error& e) {
      const bool about_std = std::string(e.what()).rfind("[dataset] std", 0) == 0;
      throw Error(fmt::format("{}: {}", at(ex.dataset, about_std ? "std" : "mean"), e.what()));
    }
  }

  r.train_opts = resolve(recipe_schema(r.model->default_recipe()), ex.train);
  r.recipe = recipe_from(r.train_opts);

  r.quantizer_name = required_name(ex.quantizer, "none");
  if (r.quantizer_name != "none") {
    try {
      r.quantizer = registry.quantizer(r.quantizer_name);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: [quantizer] name: {}", at(ex.quantizer, "name"), e.what()));
    }
    r.quantizer_opts = resolve(r.quantizer->schema(), ex.quantizer, {"name"});
    r.quantizer_rules = r.quantizer->caps().rules;
    try {
      r.quantizer_config = config_list_option(r.quantizer_opts, r.quantizer_rules);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", at(ex.quantizer, "config"), e.what()));
    }
  } else if (ex.quantizer.values.size() > ex.quantizer.values.count("name")) {
    throw Error(
        fmt::format("{}: [quantizer] has options but no quantizer name (or name = \"none\")",
                    ex.quantizer.where.str()));
  }

  r.backend_name = required_name(ex.backend, "cpu");
  try {
    r.backend = registry.backend(r.backend_name);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: [backend] name: {}", at(ex.backend, "name"), e.what()));
  }
  r.backend_opts = resolve(r.backend->options(), ex.backend, {"name"});
  r.availability = r.backend->availability();

  r.metric_opts = resolve(metrics_schema(), ex.metrics);
  r.metric_names = r.metric_opts.get<std::vector<std::string>>("names");
  for (const auto& name : r.metric_names) {
    try {
      r.metrics.push_back(registry.metric(name));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: [metrics] names: {}", at(ex.metrics, "names"), e.what()));
    }
  }

  r.config = {{"model", r.model_opts.to_json()},     {"dataset", r.data_opts.to_json()},
              {"train", r.train_opts.to_json()},     {"quantizer", r.quantizer_opts.to_json()},
              {"backend", r.backend_opts.to_json()}, {"metrics", r.metric_opts.to_json()}};
  r.config["model"]["name"] = r.model_name;
  // Unset, they keep the identity every earlier result was stored under.
  for (const char* key : {"mean", "std"})
    if (r.data_cfg.mean.empty()) r.config["dataset"].erase(key);
  if (!r.weights.empty()) {
    std::ifstream in(r.weights, std::ios::binary);
    r.weights_bytes = std::make_shared<const std::string>(std::istreambuf_iterator<char>(in),
                                                          std::istreambuf_iterator<char>());
    r.config["model"]["weights"] = r.weights;
    r.config["model"]["weights_hash"] = stable_hash(*r.weights_bytes);
  }
  r.config["quantizer"]["name"] = r.quantizer_name;
  r.config["backend"]["name"] = r.backend_name;
  return r;
}

void require_available(const Resolved& r, const Experiment& ex) {
  if (!r.availability.available)
    throw Error(fmt::format("{}: [backend] name: backend '{}' is unavailable: {}",
                            at(ex.backend, "name"), r.backend_name, r.availability.reason));
}

ExperimentPlan plan_experiment(const Experiment& experiment, const Registry& registry) {
  auto r = std::make_shared<Resolved>(resolve_experiment(experiment, registry));
  ExperimentPlan plan;
  plan.hash = stable_hash(r->config.dump());
  plan.config = r->config;
  if (!r->availability.available)
    plan.unavailable =
        fmt::format("backend '{}' is unavailable: {}", r->backend_name, r->availability.reason);
  plan.resolved = std::move(r);
  return plan;
}

}  // namespace qlab
