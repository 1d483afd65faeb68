#pragma once
// A model as ONNX (opset 13), built on Debian's libonnx protobuf classes and
// checked by ONNX's own checker (with shape inference) before it is
// returned. A float model exports as plain ops. A static int8 model exports
// as QDQ, the form ONNX Runtime, TensorRT and OpenVINO fuse into int8
// kernels: QuantizeLinear/DequantizeLinear on every activation grid, int8
// weight initializers with per-channel scales along axis 0 (Conv, and Gemm
// with transB), int32 biases on scale input x weight, fused ReLU/ReLU6 kept
// before the grid. A grid narrower than 8 bits exports on the uint8 codes
// the int8 kernels run it on, with the Clip that bounds them.
#include <qlab/plugin/graph.hpp>
#include <qlab/quant/qmodel.hpp>

#include <map>
#include <string>

namespace qlab {

struct OnnxExport {
  std::string bytes;           ///< the serialized ModelProto
  std::int64_t nodes = 0;      ///< ONNX nodes written
  std::int64_t qdq_pairs = 0;  ///< activation grids (QuantizeLinear/DequantizeLinear)
};

/// `module` (its graph) as an ONNX model with one input "input" (N x the
/// graph's input shape, float) and the graph's outputs. `quantized`: the
/// static model whose grids and weights to write (null: float). Metadata
/// strings go to the model's metadata_props. Throws qlab::Error for a model
/// ONNX cannot express: a dynamic or simulated one (named with its reason),
/// or an op without an ONNX equivalent.
OnnxExport onnx_model(GraphModule module, const QuantizedModel* quantized,
                      const std::map<std::string, std::string>& metadata);

}  // namespace qlab
