// ONNX Runtime's CPU provider on a model `qlab export --onnx` wrote, against
// the reference `--reference` wrote beside it (the test images and qlab's
// own outputs on them):
//   node compare_onnxruntime.js MODEL.onnx REFERENCE.safetensors LEVEL
// LEVEL is ONNX Runtime's graph optimization: "disabled" runs the QDQ ops
// as written (what the file means), "all" lets it fuse them into its int8
// kernels (how it deploys). Prints one JSON line: images; the largest
// difference relative to max(1, |qlab's output|); for an output on a grid,
// the share of outputs one step or more apart and the most steps; each
// side's test accuracy (argmax against the labels).
const ort = require('onnxruntime-node');
const fs = require('fs');

function readSafetensors(path) {
  const buf = fs.readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  const meta = header.__metadata__ ? JSON.parse(header.__metadata__.qlab) : {};
  const out = {meta};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = new Uint8Array(buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]));
    const types = {F32: Float32Array, I64: BigInt64Array};
    if (!types[t.dtype]) throw new Error(`${path}: ${name} is ${t.dtype}`);
    out[name] = {shape: t.shape, data: new types[t.dtype](bytes.buffer)};
  }
  return out;
}

function argmax(data, row, width) {
  let best = 0;
  for (let k = 1; k < width; ++k)
    if (data[row * width + k] > data[row * width + best]) best = k;
  return best;
}

async function main() {
  const [model, referencePath, level] = process.argv.slice(2);
  const ref = readSafetensors(referencePath);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: level,
    intraOpNumThreads: 1,
  });
  const [images, ...sample] = ref.input.shape;
  const per = sample.reduce((a, b) => a * b, 1);
  const width = ref.output.shape[1];
  const got = new Float32Array(images * width);
  for (let i = 0; i < images; i += 250) {
    const b = Math.min(250, images - i);
    const x = new ort.Tensor('float32', ref.input.data.subarray(i * per, (i + b) * per), [b, ...sample]);
    const y = (await session.run({[session.inputNames[0]]: x}))[session.outputNames[0]];
    got.set(y.data, i * width);
  }
  const step = ref.meta.output_scale;
  let maxRelative = 0, off = 0, maxSteps = 0, rightQlab = 0, rightOrt = 0;
  for (let k = 0; k < got.length; ++k) {
    const d = Math.abs(got[k] - ref.output.data[k]);
    maxRelative = Math.max(maxRelative, d / Math.max(1, Math.abs(ref.output.data[k])));
    if (step > 0) {
      const steps = Math.round(d / step);
      if (steps >= 1) ++off;
      maxSteps = Math.max(maxSteps, steps);
    }
  }
  for (let r = 0; r < images; ++r) {
    const label = Number(ref.label.data[r]);
    if (argmax(ref.output.data, r, width) === label) ++rightQlab;
    if (argmax(got, r, width) === label) ++rightOrt;
  }
  console.log(JSON.stringify({
    images,
    onnxruntime: require('onnxruntime-node/package.json').version,
    level,
    max_relative: maxRelative,
    output_step: step,
    share_off_by_a_step: off / got.length,
    max_steps: maxSteps,
    accuracy_qlab: (100 * rightQlab) / images,
    accuracy_onnxruntime: (100 * rightOrt) / images,
    qlab_executable: ref.meta.executable,
  }));
}

main().catch((e) => {
  console.error(`compare_onnxruntime.js: ${e.message}`);
  process.exit(1);
});
