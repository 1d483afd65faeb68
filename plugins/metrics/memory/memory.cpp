// Peak resident memory growth during one inference of one batch, on Linux:
// after a warm-up run, freed heap is handed back to the system
// (malloc_trim), the kernel's peak-RSS mark is reset to the current RSS
// (/proc/self/clear_refs, "5"), one batch runs, and the growth is the new
// peak (VmHWM) minus the RSS before. Weights already resident are not
// counted here: `weight_bytes` reports them, as held in memory for
// inference (int8 codes take a byte each, whatever their packed size).
// On a GPU backend, `device_peak_bytes` is the device allocator's peak
// during that same batch.
#include <qlab/plugin/metric.hpp>

#include <malloc.h>

#include <fstream>
#include <string>

namespace {

// A "VmRSS:"-style line of /proc/self/status, in bytes; -1 if unreadable.
double status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) * 1024.0;
  return -1;
}

bool reset_peak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

double weight_bytes(const qlab::MeasureContext& ctx) {
  double bytes = 0;
  const auto* q = ctx.quantized();
  for (const auto& p : ctx.float_module()->named_parameters()) {
    const auto dot = p.key().rfind('.');
    const bool int8_weight =
        q && q->layers.count(p.key().substr(0, dot)) && p.key().substr(dot + 1) == "weight";
    bytes += static_cast<double>(p.value().numel()) * (int8_weight ? 1.0 : 4.0);
  }
  return bytes;
}

class Memory final : public qlab::Metric {
 public:
  std::vector<std::string> keys() const override {
    return {"peak_memory_bytes", "weight_bytes", "device_peak_bytes"};
  }
  void measure(qlab::MeasureContext& ctx, qlab::MetricValues& out) const override {
    out["weight_bytes"] = weight_bytes(ctx);
    const auto& test = ctx.test_set();
    const std::int64_t n = std::min(ctx.batch_size(), test.size());
    if (n == 0) return;
    const auto batch = test.images.slice(0, 0, n).contiguous();
    auto& exe = ctx.executable();
    exe.run(batch);  // one-time work (prepacking, allocator set-up) is not per inference
    malloc_trim(0);
    if (!reset_peak()) return;  // no way to measure here: absent, not zero
    const double before = status_bytes("VmRSS");
    exe.reset_device_peak();
    exe.run(batch);
    const double peak = status_bytes("VmHWM");
    // A GPU's own memory, from its caching allocator, beside the host's.
    if (const auto device = exe.device_peak_bytes(); device >= 0)
      out["device_peak_bytes"] = static_cast<double>(device);
    if (before < 0 || peak < 0) return;
    out["peak_memory_bytes"] = std::max(0.0, peak - before);
  }
};

}  // namespace

QLAB_PLUGIN(Memory, "metric", "memory", "peak resident memory growth of one batch's inference")
