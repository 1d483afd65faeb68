#pragma once
// Everything a user of the qlab library calls.
#include <qlab/checkpoint.hpp>
#include <qlab/data.hpp>
#include <qlab/error.hpp>
#include <qlab/experiment.hpp>
#include <qlab/graph.hpp>
#include <qlab/options.hpp>
#include <qlab/registry.hpp>
#include <qlab/result.hpp>
#include <qlab/runtime.hpp>
#include <qlab/trainer.hpp>
#include <qlab/version.hpp>
