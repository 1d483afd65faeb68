#pragma once
// Everything a user of the qlab library calls.
#include <qlab/checkpoint.hpp>
#include <qlab/error.hpp>
#include <qlab/experiment.hpp>
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/graph.hpp>
#include <qlab/plugin/options.hpp>
#include <qlab/plugin/trainer.hpp>
#include <qlab/registry.hpp>
#include <qlab/result.hpp>
#include <qlab/runtime.hpp>
#include <qlab/version.hpp>
