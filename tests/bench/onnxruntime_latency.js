// ONNX Runtime's CPU provider on one .onnx model: the median latency of a
// batch, after warm-up, with a fixed number of intra-op threads.
//   node tests/bench/onnxruntime_latency.js MODEL.onnx SHAPE THREADS
// SHAPE is e.g. 64x1x32x32. Prints "<median> ms". onnxruntime-node must be
// resolvable (NODE_PATH), as tests/bench/fp32_vs_onnxruntime.sh arranges.
const ort = require('onnxruntime-node');

async function main() {
  const [model, shapeText, threadsText] = process.argv.slice(2);
  const shape = shapeText.split('x').map(Number);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: Number(threadsText),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const data = Float32Array.from({length: shape.reduce((a, b) => a * b)}, () => Math.random());
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, shape)};
  for (let i = 0; i < 20; ++i) await session.run(feeds);
  const times = [];
  for (let i = 0; i < 200; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  console.log(`${times[times.length >> 1].toFixed(3)} ms`);
}

main().catch((e) => {
  console.error(`onnxruntime_latency.js: ${e.message}`);
  process.exit(1);
});
