#pragma once
// Pictures of what a reconstruction model (the VAE) does, stored in its
// result rows so a report can draw them without running the model again.
#include <qlab/plugin/backend.hpp>
#include <qlab/plugin/data.hpp>
#include <qlab/plugin/graph.hpp>

#include <nlohmann/json.hpp>

namespace qlab {

/// {"width", "height", "originals", "reconstructions", "prior"}: the first
/// 8 test images and `exe`'s reconstructions of them, and (given the float
/// module) 16 images decoded from z ~ N(0, I), drawn at the graph's
/// reparameterize node. Pixels are integers 0-255, row-major, image after
/// image. Seeded: every row of an experiment shows the same images and noise.
nlohmann::json reconstruction_samples(Executable& exe, const Dataset& test,
                                      GraphModule* float_module);

}  // namespace qlab
