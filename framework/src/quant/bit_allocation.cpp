// Choosing each layer's width under a budget: a multiple-choice knapsack.
#include <qlab/error.hpp>
#include <qlab/quant/mixed_precision.hpp>

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <numeric>

namespace qlab {
namespace {

// Above this many cost states the table would take more memory and time
// than a 2-core machine should spend; the unit grows instead.
constexpr std::int64_t kMaxStates = 1 << 21;

double cheapest_total(const std::vector<LayerChoices>& layers) {
  double total = 0;
  for (const auto& l : layers) {
    double least = std::numeric_limits<double>::infinity();
    for (const auto& c : l.choices) least = std::min(least, c.cost);
    total += least;
  }
  return total;
}

BitAllocation tally(const std::vector<LayerChoices>& layers, const std::vector<std::size_t>& pick) {
  BitAllocation a;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const WidthChoice& c = layers[i].choices[pick[i]];
    a.bits[layers[i].layer] = c.bits;
    a.cost += c.cost;
    a.sensitivity += c.sensitivity;
  }
  return a;
}

BitAllocation knapsack(const std::vector<LayerChoices>& layers, double budget) {
  // Costs are whole numbers (bits, bit-operations): their gcd is the
  // coarsest unit that loses nothing.
  std::int64_t unit = 0;
  for (const auto& l : layers)
    for (const auto& c : l.choices) unit = std::gcd(unit, static_cast<std::int64_t>(c.cost));
  unit = std::max<std::int64_t>(unit, 1);
  bool exact = true;
  for (const auto& l : layers)
    for (const auto& c : l.choices)
      if (c.cost != std::floor(c.cost)) exact = false;
  if (budget / static_cast<double>(unit) > static_cast<double>(kMaxStates)) {
    unit = static_cast<std::int64_t>(std::ceil(budget / kMaxStates));
    exact = false;
  }
  const auto capacity = static_cast<std::int64_t>(std::floor(budget / static_cast<double>(unit)));
  const auto units = [&](double cost) {
    return static_cast<std::int64_t>(std::ceil(cost / static_cast<double>(unit) - 1e-9));
  };
  constexpr double kNone = std::numeric_limits<double>::infinity();
  // best[c]: the least sensitivity of the layers so far at total cost c.
  std::vector<double> best(static_cast<std::size_t>(capacity + 1), kNone), next;
  best[0] = 0;
  // choice[i][c]: layer i's choice on the way to cost c.
  std::vector<std::vector<std::int8_t>> choice(layers.size());
  for (std::size_t i = 0; i < layers.size(); ++i) {
    next.assign(best.size(), kNone);
    choice[i].assign(best.size(), -1);
    for (std::size_t k = 0; k < layers[i].choices.size(); ++k) {
      const std::int64_t w = units(layers[i].choices[k].cost);
      const double s = layers[i].choices[k].sensitivity;
      for (std::int64_t c = capacity; c >= w; --c) {
        const double prev = best[static_cast<std::size_t>(c - w)];
        if (prev == kNone || prev + s >= next[static_cast<std::size_t>(c)]) continue;
        next[static_cast<std::size_t>(c)] = prev + s;
        choice[i][static_cast<std::size_t>(c)] = static_cast<std::int8_t>(k);
      }
    }
    best.swap(next);
  }
  std::int64_t at = 0;
  for (std::int64_t c = 0; c <= capacity; ++c)
    if (best[static_cast<std::size_t>(c)] < best[static_cast<std::size_t>(at)]) at = c;
  if (best[static_cast<std::size_t>(at)] == kNone)
    throw Error("mixed precision: no allocation fits the budget once costs are rounded up");
  std::vector<std::size_t> pick(layers.size());
  for (std::size_t i = layers.size(); i-- > 0;) {
    const auto k = choice[i][static_cast<std::size_t>(at)];
    pick[i] = static_cast<std::size_t>(k);
    at -= units(layers[i].choices[pick[i]].cost);
  }
  BitAllocation a = tally(layers, pick);
  a.exact = exact;
  return a;
}

BitAllocation greedy_descent(const std::vector<LayerChoices>& layers, double budget) {
  std::vector<std::size_t> pick(layers.size());
  double cost = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& ch = layers[i].choices;
    for (std::size_t k = 1; k < ch.size(); ++k)
      if (ch[k].cost > ch[pick[i]].cost) pick[i] = k;
    cost += ch[pick[i]].cost;
  }
  while (cost > budget) {
    // The step down (to the next cheaper width) losing least per cost saved.
    double best_rate = std::numeric_limits<double>::infinity();
    std::size_t layer = 0, to = 0;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& ch = layers[i].choices;
      const WidthChoice& now = ch[pick[i]];
      for (std::size_t k = 0; k < ch.size(); ++k) {
        if (ch[k].cost >= now.cost) continue;
        const double rate = (ch[k].sensitivity - now.sensitivity) / (now.cost - ch[k].cost);
        if (rate < best_rate) best_rate = rate, layer = i, to = k;
      }
    }
    cost += layers[layer].choices[to].cost - layers[layer].choices[pick[layer]].cost;
    pick[layer] = to;
  }
  BitAllocation a = tally(layers, pick);
  a.exact = false;
  return a;
}

}  // namespace

BitAllocation allocate_bits(const std::vector<LayerChoices>& layers, double budget, bool greedy) {
  for (const auto& l : layers)
    if (l.choices.empty() || l.choices.size() > 127)
      throw Error(fmt::format("mixed precision: layer '{}' has {} widths to choose from", l.layer,
                              l.choices.size()));
  const double least = cheapest_total(layers);
  if (least > budget)
    throw Error(fmt::format(
        "mixed precision: the budget ({:.0f}) is below the cheapest allocation ({:.0f}), every "
        "layer at its narrowest width",
        budget, least));
  return greedy ? greedy_descent(layers, budget) : knapsack(layers, budget);
}

}  // namespace qlab
