// A report's rows.json, slim enough to commit. A sweep's rows repeat the
// same printed model, and every point at one weight width repeats the same
// per-channel weight qparams (and at one activation width the same
// activation qparams): each is written once, under "shared", and named
// where it recurs.
#include <qlab/report.hpp>

#include <fmt/format.h>

#include <cmath>
#include <map>

namespace qlab {
namespace {

// Values shorter than this stay inline: a name costs about as much.
constexpr std::size_t kSharedMinChars = 40;

// Calibration numbers come from float32 tensors; 9 significant digits give
// each back exactly as float32, in half the characters of a double's 17.
void round_to_float32_digits(nlohmann::json& v) {
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d)) v = std::stod(fmt::format("{:.9g}", d));
  } else if (v.is_structured()) {
    for (auto& child : v) round_to_float32_digits(child);
  }
}

// A layer's calibration entry as two parts: what its weight grid fixes
// (weight_*) and what its activation grids fix (the rest), since sweeps
// vary the two widths independently.
nlohmann::json split_layer(const nlohmann::json& entry) {
  nlohmann::json weight = nlohmann::json::object(), activations = nlohmann::json::object();
  for (const auto& [k, v] : entry.items())
    (k.rfind("weight_", 0) == 0 ? weight : activations)[k] = v;
  return {{"weight", weight}, {"activations", activations}};
}

class Shared {
 public:
  // Replaces, bottom up, every array or object of kSharedMinChars or more
  // by its name in the table ("shared/N").
  void share(nlohmann::json& v) {
    if (!v.is_structured()) return;
    for (auto& child : v) share(child);
    std::string text = v.dump();
    if (text.size() < kSharedMinChars) return;
    auto [it, added] = index_.emplace(text, values_.size());
    if (added) values_.push_back(std::move(text));
    v = fmt::format("shared/{}", it->second);
  }
  const std::vector<std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::size_t> index_;
  std::vector<std::string> values_;
};

std::string lines(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ",\n" : "\n") + items[i];
  return out;
}

}  // namespace

std::string rows_json(const std::vector<nlohmann::json>& rows) {
  Shared shared;
  nlohmann::json graphs = nlohmann::json::object();
  std::vector<std::string> out_rows;
  for (nlohmann::json r : rows) {
    if (r.contains("graph") && r["graph"].is_string()) {
      if (!r["graph"].get<std::string>().empty()) graphs[r.value("model", "?")] = r["graph"];
      r.erase("graph");
    }
    if (r.contains("samples") && r["samples"].is_object()) {
      const auto& s = r["samples"];
      r["samples"] = {{"width", s.value("width", 0)},
                      {"height", s.value("height", 0)},
                      {"images", s.contains("originals") ? s["originals"].size() : 0},
                      {"drawn_in", "plots/"}};
    }
    if (r.contains("calibration") && r["calibration"].is_object()) {
      auto& calibration = r["calibration"];
      round_to_float32_digits(calibration);
      for (auto& [layer, entry] : calibration.items()) {
        if (!entry.is_object()) continue;
        entry = split_layer(entry);
        shared.share(entry["weight"]);
        shared.share(entry["activations"]);
      }
    }
    // What a sweep's points have in common: a baseline's recipe and curve,
    // the environment, the kernels a model lowers to.
    for (const char* key : {"config", "environment", "training", "lowered"})
      if (r.contains(key)) shared.share(r[key]);
    out_rows.push_back(r.dump());
  }
  return "{\"format\": \"qlab report rows 2: each model's printed graph under graphs; a "
         "calibration entry as weight and activations parts; a value (of calibration, config, "
         "environment, training, lowered) written once under shared and named where it recurs "
         "as shared/N; calibration numbers to 9 significant "
         "digits; reconstruction samples drawn in plots/\",\n\"graphs\": " +
         graphs.dump() + ",\n\"shared\": [" + lines(shared.values()) + "],\n\"rows\": [" +
         lines(out_rows) + "]}\n";
}

}  // namespace qlab
