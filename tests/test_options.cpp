#include "test_support.hpp"

#include <qlab/error.hpp>
#include <qlab/experiment.hpp>
#include <qlab/plugin/options.hpp>
#include <qlab/plugin/recipe.hpp>

#include <gtest/gtest.h>

namespace qlab {
namespace {

Schema schema() {
  Schema s;
  s.integer("epochs", 3, "epochs", 0, 100)
      .number("lr", 0.1, "learning rate", 0.0, 10.0)
      .boolean("fuse", true, "fuse layers")
      .string("observer", "minmax", "observer", {"minmax", "histogram"})
      .string_list("names", {"accuracy"}, "metrics");
  return s;
}

using test::error_of;

RawSection section_of(const std::string& toml, const std::string& name = "train") {
  auto ex = parse_experiment(toml, "exp.toml");
  if (name == "train") return ex.train;
  if (name == "model") return ex.model;
  return ex.metrics;
}

TEST(Options, DefaultsAndOverrides) {
  auto o = resolve(schema(), section_of("[train]\nepochs = 7\nlr = 1\n"));
  EXPECT_EQ(o.get<std::int64_t>("epochs"), 7);
  EXPECT_DOUBLE_EQ(o.get<double>("lr"), 1.0);  // an integer is accepted as a number
  EXPECT_TRUE(o.get<bool>("fuse"));
  EXPECT_EQ(o.get<std::string>("observer"), "minmax");
  EXPECT_EQ(o.to_json()["epochs"], 7);
}

TEST(Options, UnknownKeyNamesFileLineAndKnownKeys) {
  auto msg = error_of([] { resolve(schema(), section_of("[train]\n\nepochz = 3\n")); });
  EXPECT_NE(msg.find("exp.toml:3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'epochz'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("epochs"), std::string::npos) << msg;
}

TEST(Options, WrongTypeNamesExpectedAndFound) {
  auto msg = error_of([] { resolve(schema(), section_of("[train]\nlr = \"fast\"\n")); });
  EXPECT_NE(msg.find("exp.toml:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[train] lr: expected number, found string \"fast\""), std::string::npos)
      << msg;
  msg = error_of([] { resolve(schema(), section_of("[train]\nepochs = 2.5\n")); });
  EXPECT_NE(msg.find("expected integer, found number 2.5"), std::string::npos) << msg;
  msg = error_of([] { resolve(schema(), section_of("[train]\nnames = \"accuracy\"\n")); });
  EXPECT_NE(msg.find("expected list of strings"), std::string::npos) << msg;
}

TEST(Options, ListsOfNumbers) {
  Schema s;
  s.number_list("mean", {}, "per channel");
  auto o = resolve(s, section_of("[train]\nmean = [0.5, 1, 2e-1]\n"));
  EXPECT_EQ(o.get<std::vector<double>>("mean"), (std::vector<double>{0.5, 1.0, 0.2}));
  EXPECT_EQ(o.to_json()["mean"], nlohmann::json({0.5, 1.0, 0.2}));
  EXPECT_TRUE(
      resolve(s, section_of("[train]\nmean = []\n")).get<std::vector<double>>("mean").empty());
  auto msg = error_of([&] { resolve(s, section_of("[train]\nmean = [0.5, \"x\"]\n")); });
  EXPECT_NE(msg.find("exp.toml:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[train] mean: a list of numbers with a string in it"), std::string::npos)
      << msg;
  msg = error_of([&] { resolve(s, section_of("[train]\nmean = 0.5\n")); });
  EXPECT_NE(msg.find("[train] mean: expected list of numbers, found number 0.5"), std::string::npos)
      << msg;
  msg = error_of([] { resolve(schema(), section_of("[train]\nnames = [1, 2]\n")); });
  EXPECT_NE(msg.find("[train] names: expected list of strings, found list [1, 2]"),
            std::string::npos)
      << msg;
}

TEST(Options, OutOfRangeAndChoices) {
  auto msg = error_of([] { resolve(schema(), section_of("[train]\nepochs = 101\n")); });
  EXPECT_NE(msg.find("out of range, expected between 0 and 100"), std::string::npos) << msg;
  msg = error_of([] { resolve(schema(), section_of("[train]\nlr = -1.0\n")); });
  EXPECT_NE(msg.find("[train] lr"), std::string::npos) << msg;
  msg = error_of([] { resolve(schema(), section_of("[train]\nobserver = \"mse\"\n")); });
  EXPECT_NE(msg.find("is not one of: minmax, histogram"), std::string::npos) << msg;
}

TEST(Experiment, SyntaxErrorsCarryLineAndColumn) {
  auto msg = error_of([] { parse_experiment("[model]\nname = \n", "broken.toml"); });
  EXPECT_NE(msg.find("broken.toml:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("TOML syntax error"), std::string::npos) << msg;
}

TEST(Experiment, UnknownSectionsAndNestedTablesAreRejected) {
  auto msg = error_of([] { parse_experiment("[modle]\nname = \"lenet\"\n", "e.toml"); });
  EXPECT_NE(msg.find("e.toml:1:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown section [modle]"), std::string::npos) << msg;
  msg = error_of([] { parse_experiment("model = 3\n", "e.toml"); });
  EXPECT_NE(msg.find("must be a section"), std::string::npos) << msg;
  msg = error_of([] { parse_experiment("[train.extra]\nx = 1\n", "e.toml"); });
  EXPECT_NE(msg.find("[train] extra: expected a value, found a table"), std::string::npos) << msg;
  msg = error_of([] { parse_experiment("[metrics]\nnames = [true, false]\n", "e.toml"); });
  EXPECT_NE(msg.find("e.toml:2:9: [metrics] names: found a list of boolean values; options take a "
                     "single value or a list of strings or numbers"),
            std::string::npos)
      << msg;
}

TEST(Experiment, MissingFileIsAnError) {
  auto msg = error_of([] { load_experiment("/nonexistent/exp.toml"); });
  EXPECT_NE(msg.find("/nonexistent/exp.toml"), std::string::npos) << msg;
}

TEST(Recipe, ModelDefaultsAreOverriddenByTrainKeys) {
  TrainRecipe lenet;
  lenet.lr = 0.05;
  lenet.momentum = 0.9;
  auto o = resolve(recipe_schema(lenet), section_of("[train]\nepochs = 5\noptimizer = \"adam\"\n"));
  const TrainRecipe r = recipe_from(o);
  EXPECT_EQ(r.epochs, 5);
  EXPECT_EQ(r.optimizer, "adam");
  EXPECT_DOUBLE_EQ(r.lr, 0.05);
  EXPECT_DOUBLE_EQ(r.momentum, 0.9);
  EXPECT_THROW(resolve(recipe_schema(lenet), section_of("[train]\noptimizer = \"rmsprop\"\n")),
               Error);
  EXPECT_THROW(resolve(recipe_schema(lenet), section_of("[train]\nschedule = \"linear\"\n")),
               Error);
}

}  // namespace
}  // namespace qlab
