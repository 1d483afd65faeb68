# What a QDQ file means, computed twice: in float64 (near exact) and in
# float32 (as ONNX Runtime computes it), on the test images of a reference
# `qlab export --onnx F --reference R` wrote. Prints how far the two and
# qlab's own outputs are apart, in steps of the output grid: the share of
# the disagreement between qlab and a runtime that float32 alone explains.
#
#   python3 tests/onnx/qdq_exact.py F.onnx R.safetensors
#
# Needs python3-torch and python3-onnx (Debian). Covers the ops qlab writes.
import json
import struct
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def read_safetensors(path):
    data = open(path, 'rb').read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = json.loads(header.pop('__metadata__', {}).get('qlab', '{}'))
    types = {'F32': np.float32, 'I64': np.int64}
    out = {}
    for name, t in header.items():
        begin, end = t['data_offsets']
        out[name] = np.frombuffer(data[8 + n + begin:8 + n + end],
                                  dtype=types[t['dtype']]).reshape(t['shape'])
    return out, meta


def evaluate(model, x, dtype):
    env = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
           for i in model.graph.initializer}
    env[model.graph.input[0].name] = torch.from_numpy(x.copy()).to(dtype)
    for n in model.graph.node:
        a = {at.name: onnx.helper.get_attribute_value(at) for at in n.attribute}
        i = [env[k] if k else None for k in n.input]
        op = n.op_type
        if op == 'QuantizeLinear':
            lo, hi = (0, 255) if i[2].dtype == torch.uint8 else (-128, 127)
            y = torch.clamp(torch.round(i[0] / i[1].to(dtype)) + i[2].to(dtype), lo, hi)
            y = y.to(i[2].dtype)
        elif op == 'DequantizeLinear':
            shape = [1] * i[0].dim()
            if i[1].dim() == 1:
                shape[a.get('axis', 1)] = -1
            steps = i[0].to(torch.int64) - i[2].to(torch.int64).reshape(shape or [1])
            y = steps.to(dtype) * i[1].to(dtype).reshape(shape or [1])
        elif op == 'Conv':
            p = a['pads']
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a['strides'],
                         (p[0], p[1]), a['dilations'], a['group'])
        elif op == 'Gemm':
            y = i[0] @ (i[1].t() if a.get('transB', 0) else i[1])
            y = y + i[2] if len(i) > 2 else y
        elif op == 'Relu':
            y = torch.relu(i[0])
        elif op == 'Clip':
            y = torch.clamp(i[0], float(i[1]), float(i[2]))
        elif op == 'Add':
            y = i[0] + i[1]
        elif op == 'MaxPool':
            y = F.max_pool2d(i[0], a['kernel_shape'], a['strides'], a['pads'][:2])
        elif op == 'AveragePool':
            y = F.avg_pool2d(i[0], a['kernel_shape'], a['strides'], a['pads'][:2])
        elif op == 'GlobalAveragePool':
            y = i[0].mean(dim=(2, 3), keepdim=True)
        elif op == 'Flatten':
            y = i[0].flatten(a.get('axis', 1))
        elif op == 'Identity':
            y = i[0]
        else:
            sys.exit(f'{op} is not among the ops qlab writes')
        env[n.output[0]] = y
    return env[model.graph.output[0].name].to(torch.float64).numpy()


def main():
    torch.set_num_threads(2)
    model = onnx.load(sys.argv[1])
    ref, meta = read_safetensors(sys.argv[2])
    x, labels = ref['input'], ref['label']
    step = meta.get('output_scale') or 1.0
    exact = evaluate(model, x.astype(np.float64), torch.float64)
    single = evaluate(model, x, torch.float32)

    def compare(name, a, b):
        apart = np.abs(a - b) / step
        accuracy = [(y.argmax(1) == labels).mean() * 100 for y in (a, b)]
        print(f'{name}: {np.mean(apart > 0.5) * 100:.1f}% of outputs a step or more apart, '
              f'{apart.max():.0f} at most; accuracy {accuracy[0]:.1f} vs {accuracy[1]:.1f}')

    compare('float32 vs float64', single, exact)
    compare('qlab vs float64', ref['output'].astype(np.float64), exact)


if __name__ == '__main__':
    main()
