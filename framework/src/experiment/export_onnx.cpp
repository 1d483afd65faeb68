// `qlab export --onnx`: an experiment's model, quantized as `qlab run`
// quantizes it (or its float baseline), as an ONNX QDQ file for ONNX
// Runtime, TensorRT or OpenVINO; and, when asked, the reference a runtime
// is checked against: the test images and qlab's own outputs on them.
#include <qlab/atomic_write.hpp>
#include <qlab/error.hpp>
#include <qlab/experiment.hpp>

#include "experiment/baseline.hpp"
#include "experiment/resolve.hpp"
#include "io/onnx_qdq.hpp"
#include "io/safetensors.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace qlab {
namespace {

// The outputs of the experiment's backend on every test image, with the
// step of the grid the output lies on (0: float).
void write_reference(const std::string& path, const Resolved& r, const FloatBaseline& b,
                     const std::shared_ptr<const QuantizedModel>& q) {
  const std::unique_ptr<Executable> exe = q ? r.backend->lower(q) : r.backend->lower(b.module);
  const Dataset& test = b.p.data.test;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> outputs;
  for (std::int64_t i = 0; i < test.images.size(0); i += 256)
    outputs.push_back(
        exe->run(test.images.slice(0, i, i + 256)).at(0).to(torch::kCPU).to(torch::kFloat32));
  double step = 0;
  if (q) {
    if (const QParams* grid = q->output_grid(q->graph().output_nodes().at(0)))
      step = grid->scale.item<double>();
  }
  write_atomically(
      path,
      safetensors_bytes(
          {{"input", test.images}, {"label", test.labels}, {"output", torch::cat(outputs)}},
          {{"output_scale", step}, {"model", r.model_name}, {"executable", exe->describe()}}));
}

}  // namespace

std::vector<std::string> export_onnx(const Experiment& ex, const Registry& registry,
                                     const RunSettings& settings, const std::string& out,
                                     const std::string& reference, std::ostream& log) {
  const Resolved r = resolve_experiment(ex, registry);
  require_available(r, ex);
  FloatBaseline b = float_baseline(r, settings, log);
  std::shared_ptr<const QuantizedModel> q;
  if (r.quantizer) q = quantize_experiment(r, b.p, b.module, b.key, settings, log).first;
  const std::string what =
      q ? fmt::format("{} ({}, {})", r.quantizer_name, to_string(q->scheme), q->widths())
        : std::string("float");
  const std::map<std::string, std::string> metadata{
      {"qlab.experiment", ex.source},
      {"qlab.model", r.model_name},
      {"qlab.quantization", what},
      {"qlab.input", fmt::format("float32 [batch, {}]: {} images zero-padded or cropped to {}; {}",
                                 fmt::join(b.p.graph.input_shape(), ", "), b.p.data.name,
                                 fmt::join(b.p.graph.input_shape(), "x"), b.p.data.normalization)}};
  OnnxExport onnx;
  try {
    onnx = onnx_model(b.module, q.get(), metadata);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: cannot export {} {} to ONNX: {}", ex.source, r.model_name, what,
                            e.what()));
  }
  write_atomically(out, onnx.bytes);
  b.row.notes.push_back(
      fmt::format("{} {} written to {} as ONNX (opset 13, checked): {} nodes, {} QuantizeLinear/"
                  "DequantizeLinear pairs",
                  r.model_name, what, out, onnx.nodes, onnx.qdq_pairs));
  if (!reference.empty()) {
    write_reference(reference, r, b, q);
    b.row.notes.push_back(fmt::format("test images and {}'s outputs on them written to {}",
                                      r.backend_name, reference));
  }
  return b.row.notes;
}

}  // namespace qlab
