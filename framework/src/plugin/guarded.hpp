#pragma once
// The plugin boundary (OpenVINO's SoPtr and wrappers): what the Registry
// hands out is a host-side object of the plugin's interface that owns the
// plugin's object, and so keeps its library loaded, and makes every call
// through plugin_call, so any exception comes back as an error tagged with
// the plugin and the method. Executables a backend lowers, and the model a
// quantizer trains with, are wrapped the same way: no host code reaches
// plugin code any other way.
#include <qlab/registry.hpp>

#include <memory>

namespace qlab {

std::shared_ptr<Model> guard(std::shared_ptr<Model> model, const PluginRecord& record);
std::shared_ptr<Quantizer> guard(std::shared_ptr<Quantizer> quantizer, const PluginRecord& record);
std::shared_ptr<Backend> guard(std::shared_ptr<Backend> backend, const PluginRecord& record);
std::shared_ptr<Metric> guard(std::shared_ptr<Metric> metric, const PluginRecord& record);

}  // namespace qlab
