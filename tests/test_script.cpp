// The Lua bindings: each qlab.* function, errors with script:line, and a
// balanced Lua stack after errors.
#include "sweep_support.hpp"

#include <qlab/script.hpp>

#include <gtest/gtest.h>
#include <lua.hpp>

#include <sstream>

namespace qlab::test {
namespace {

class ScriptTest : public ::testing::Test {
 protected:
  ScriptTest() : store_(dir_.file("r.sqlite")) {}

  Script& script(std::vector<std::string> args = {}, bool report_only = false,
                 double max_seconds = 0) {
    ScriptSettings s;
    s.max_seconds = max_seconds;
    s.runner = fake_.runner();
    s.reports_root = dir_.file("reports");
    s.args = std::move(args);
    s.report_only = report_only;
    script_ = std::make_unique<Script>(build_registry(), store_, s, log_);
    return *script_;
  }
  std::string run(Script& s, const std::string& code) { return script_error(s, code); }
  // A global of the script as a string.
  std::string global(Script& s, const char* name) {
    lua_getglobal(s.state(), name);
    std::string v = lua_isstring(s.state(), -1) ? lua_tostring(s.state(), -1) : "(not a string)";
    lua_pop(s.state(), 1);
    return v;
  }

  TempDir dir_;
  ResultStore store_;
  FakeRunner fake_;
  std::ostringstream log_;
  std::unique_ptr<Script> script_;
};

const char* kBase = R"(
base = { model = "lenet", quantizer = { name = "static" }, backend = { name = "cpu" } }
)";

TEST_F(ScriptTest, MaxSecondsStopsAStuckScriptAtItsLine) {
  auto& s = script({}, false, 0.2);
  const std::string msg = run(s, "local n = 0\nwhile true do n = n + 1 end\n");
  EXPECT_NE(msg.find("t.lua:2: the script ran past --max-seconds"), std::string::npos) << msg;
  EXPECT_EQ(lua_gettop(s.state()), 0);
  EXPECT_EQ(run(script({}, false, 5), "x = 1"), "");  // a quick script is untouched
}

TEST_F(ScriptTest, EvaluateReturnsTheRowWithItsBaseline) {
  auto& s = script();
  EXPECT_EQ(run(s, std::string(kBase) + R"(
local row = qlab.evaluate(base)
acc = tostring(row.metrics.accuracy) .. " " .. row.mode .. " " .. row.status
base_acc = tostring(row.baseline.metrics.accuracy) .. " " .. row.baseline.quantizer
bits = tostring(row.config.quantizer.weight_bits)
)"),
            "");
  EXPECT_EQ(global(s, "acc"), "80.0 int8 ok");
  EXPECT_EQ(global(s, "base_acc"), "88.0 none");
  EXPECT_EQ(global(s, "bits"), "8");
  EXPECT_EQ(*fake_.calls, 1);
  // Stored under the script's name; a second call reads the store.
  EXPECT_EQ(store_.points({"script", "", "", "", ""}).size(), 1u);
  EXPECT_EQ(run(s, std::string(kBase) + "qlab.evaluate(base)"), "");
  EXPECT_EQ(*fake_.calls, 1);
}

TEST_F(ScriptTest, TrainDropsTheQuantizerAndQuantizeNeedsOne) {
  auto& s = script();
  EXPECT_EQ(run(s, std::string(kBase) + "q = qlab.train(base).quantizer"), "");
  EXPECT_EQ(global(s, "q"), "none");
  EXPECT_EQ(run(s, "qlab.quantize{ model = 'lenet' }"),
            "t.lua:1: qlab.quantize needs a quantizer table with a name");
}

TEST_F(ScriptTest, SweepExpandsTheGridAndFilters) {
  auto& s = script();
  EXPECT_EQ(run(s, std::string(kBase) + R"(
local rows = qlab.sweep{
  name = "bits", base = base,
  grid = { ["quantizer.weight_bits"] = {2, 4, 8}, ["quantizer.per_channel"] = {true, false} },
  where = function(p) return p.quantizer.per_channel or p["quantizer.weight_bits"] == 8 end,
}
n = tostring(#rows)
first = rows[1].point.label .. " " .. tostring(rows[1].metrics.accuracy)
)"),
            "");
  EXPECT_EQ(global(s, "n"), "4");
  EXPECT_EQ(global(s, "first"), "per_channel=true weight_bits=2 20.0");
  EXPECT_EQ(*fake_.calls, 4);
  EXPECT_EQ(store_.points({"bits", "", "", "", ""}).size(), 4u);
}

TEST_F(ScriptTest, ResultsQueriesTheStore) {
  auto& s = script();
  EXPECT_EQ(run(s, std::string(kBase) + R"(
qlab.sweep{ name = "a", base = base, grid = { ["quantizer.weight_bits"] = {2, 3} } }
ok = tostring(#qlab.results{ sweep = "a", status = "ok" })
failed = qlab.results{ status = "failed" }[1].notes[1]
)"),
            "");
  EXPECT_EQ(global(s, "ok"), "2");  // the fp32 row and the static row of one point
  EXPECT_EQ(global(s, "failed"), "[train] loss became NaN at epoch 1");
  EXPECT_EQ(s.failures().size(), 1u);
  EXPECT_EQ(run(s, "qlab.results{ colour = 'red' }")
                .rfind("t.lua:1: qlab.results: unknown filter 'colour'", 0),
            0u);
}

TEST_F(ScriptTest, PluginsListsWhatIsLoaded) {
  auto& s = script();
  EXPECT_EQ(run(s, R"(
for _, p in ipairs(qlab.plugins()) do
  if p.kind == "model" and p.name == "lenet" then found = "yes" end
end)"),
            "");
  EXPECT_EQ(global(s, "found"), "yes");
}

TEST_F(ScriptTest, ArgsOverrideTypedDefaults) {
  auto& s = script({"epochs=3", "tag=full", "lr=0.5"});
  EXPECT_EQ(run(s, R"(
local a = qlab.args{ epochs = 1, tag = "quick", lr = 0.1, verbose = false }
v = a.epochs .. " " .. a.tag .. " " .. a.lr .. " " .. tostring(a.verbose)
)"),
            "");
  EXPECT_EQ(global(s, "v"), "3 full 0.5 false");
  auto& bad = script({"epochs=three"});
  EXPECT_EQ(run(bad, "qlab.args{ epochs = 1 }"),
            "t.lua:1: script argument 'epochs=three': expected integer");
  auto& unknown = script({"epoch=3"});
  EXPECT_EQ(run(unknown, "qlab.args{ epochs = 1 }"),
            "t.lua:1: script argument 'epoch=3': unknown key 'epoch' (known: epochs)");
}

TEST_F(ScriptTest, WithCopiesABaseAndSetsTheChanges) {
  auto& s = script();
  EXPECT_EQ(run(s, R"(
local base = { model = "lenet", quantizer = { name = "static", weight_bits = 4 } }
local w = qlab.with(base, { quantizer = { name = "dorefa" }, backend = "onednn" })
v = w.model .. " " .. w.quantizer.name .. " " .. tostring(w.quantizer.weight_bits) .. " " ..
    w.backend .. " " .. base.quantizer.name .. " " .. tostring(base.backend) .. " " ..
    tostring(qlab.with(base).quantizer == base.quantizer)
)"),
            "");
  EXPECT_EQ(global(s, "v"), "lenet dorefa nil onednn static nil true");
  EXPECT_EQ(run(s, "qlab.with(base)"), "t.lua:1: qlab.with expects a table, found nil");
  EXPECT_EQ(run(s, "qlab.with({}, 3)"),
            "t.lua:1: qlab.with: its changes must be a table, found number");
}

TEST_F(ScriptTest, OptionErrorsNameTheScriptLine) {
  auto& s = script();
  EXPECT_EQ(run(s, "\n\nqlab.evaluate{ model = 'lenet', train = { epochs = 'two' } }"),
            "t.lua:3: [train] epochs: expected integer, found string \"two\"");
  EXPECT_EQ(run(s, "qlab.evaluate{ model = 'lenet', trian = {} }")
                .rfind("t.lua:1: unknown section 'trian'", 0),
            0u);
  EXPECT_EQ(run(s, "qlab.evaluate{ model = 'lenet', quantizer = { name = 'magic' } }")
                .rfind("t.lua:1: [quantizer] name: ", 0),
            0u);
  EXPECT_EQ(
      run(s, "qlab.sweep{ base = { model = 'lenet' }, grid = { ['train.epochs'] = {1, 'x'} } }"),
      "t.lua:1: [train] epochs: expected integer, found string \"x\"");
  EXPECT_EQ(run(s, "qlab.sweep{ base = { model = 'lenet' }, grid = {}, when = 1 }"),
            "t.lua:1: qlab.sweep: unknown key 'when' (known: base, grid, isolate, name, where)");
  EXPECT_EQ(*fake_.calls, 0);
}

TEST_F(ScriptTest, DatasetMeanAndStdAreListsOfNumbers) {
  auto& s = script();
  EXPECT_EQ(run(s, "qlab.evaluate{ model = 'lenet', dataset = { mean = {0.5}, std = {1} } }"), "");
  EXPECT_EQ(*fake_.calls, 1);
  const std::string mixed =
      run(s, "qlab.evaluate{ model = 'lenet', dataset = { mean = {0.5, 'x'}, std = {1, 1} } }");
  EXPECT_NE(mixed.find("expected a list of numbers, found a string element"), std::string::npos)
      << mixed;
  EXPECT_EQ(run(s, "\nqlab.evaluate{ model = 'lenet', dataset = { mean = {0.5} } }"),
            "t.lua:2: [dataset] mean has 1 values and std 0; give both, one per channel");
  EXPECT_EQ(*fake_.calls, 1);
}

TEST_F(ScriptTest, LuaErrorsNameTheScriptLine) {
  auto& s = script();
  EXPECT_EQ(run(s, "local x = 1\nerror('my own failure')"), "t.lua:2: my own failure");
  EXPECT_EQ(run(s, "local x = nil\nlocal y = x.field"),
            "t.lua:2: attempt to index a nil value (local 'x')");
  EXPECT_EQ(run(s, "x = = 1").rfind("t.lua:1: unexpected symbol", 0), 0u);
  EXPECT_EQ(run(s, std::string(kBase) +
                       "qlab.sweep{ base = base, grid = { ['quantizer.weight_bits'] = {2} },\n"
                       "  where = function(p) error('bad filter') end }"),
            "t.lua:4: bad filter");
  EXPECT_EQ(error_of([&] { s.run_file(dir_.file("missing.lua")); }),
            dir_.file("missing.lua") + ": no such script");
}

// Lua shortens chunk names past 59 characters to "...tail"; qlab's messages
// name the script in full however deep it lives.
TEST_F(ScriptTest, ErrorsNameALongScriptPathInFull) {
  auto& s = script();
  const std::string path = "/" + std::string(40, 'd') + "/" + std::string(30, 'n') + ".lua";
  auto message = [&](const std::string& code) {
    try {
      s.run_string(code, path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message("local t = {}\nqlab.sweep(1)"),
            path + ":2: qlab.sweep expects a table, found number");
  EXPECT_EQ(message("local x = nil\nlocal y = x.field"),
            path + ":2: attempt to index a nil value (local 'x')");
  EXPECT_EQ(message("error('mine')"), path + ":1: mine");
  EXPECT_EQ(message("x = = 1").rfind(path + ":1: unexpected symbol", 0), 0u);
}

TEST_F(ScriptTest, TheStackStaysBalancedAfterErrors) {
  auto& s = script();
  const int top = lua_gettop(s.state());
  for (const char* code : {"qlab.evaluate(42)", "qlab.sweep{ base = 1 }", "qlab.results{ 1 }",
                           "qlab.report{}", "qlab.plot{ kind = 'pie' }",
                           "qlab.args{ f = function() end }", "qlab.with({}, 1)", "error({})"}) {
    EXPECT_NE(run(s, code), "") << code;
    EXPECT_EQ(lua_gettop(s.state()), top) << code;
  }
  // Errors caught inside the script leave it usable.
  EXPECT_EQ(run(s, "ok, msg = pcall(qlab.evaluate, 42)\nassert(not ok)"), "");
  EXPECT_EQ(global(s, "msg"), "t.lua:1: qlab.evaluate expects a table, found number");
  EXPECT_EQ(lua_gettop(s.state()), top);
}

TEST_F(ScriptTest, ReportWritesMarkdownPlotsAndData) {
  auto& s = script();
  EXPECT_EQ(run(s, std::string(kBase) + R"(
local rows = qlab.sweep{ name = "bits", base = base, grid = { ["quantizer.weight_bits"] = {2, 4, 8} } }
path = qlab.report{ name = "bits", title = "Bits", rows = rows,
  plots = { { kind = "line", name = "acc", x = "quantizer.weight_bits", y = "accuracy" } } }
again = qlab.report{ name = "again", sweeps = { "bits" } }
)"),
            "");
  EXPECT_EQ(global(s, "path"), dir_.file("reports/bits/README.md"));
  for (const char* f :
       {"reports/bits/rows.csv", "reports/bits/rows.json", "reports/bits/plots/acc.png",
        "reports/bits/plots/acc.svg", "reports/again/README.md"})
    EXPECT_GT(std::filesystem::file_size(dir_.file(f)), 0u) << f;
  EXPECT_EQ(run(s, "qlab.report{ name = 'x', sweeps = { 'nothing' } }"),
            "t.lua:1: [report] sweeps: no stored point of sweep 'nothing'");
}

TEST_F(ScriptTest, ReportOnlyModeReadsTheStoreAndNeverRuns) {
  const std::string code = std::string(kBase) + R"(
local rows = qlab.sweep{ name = "bits", base = base, grid = { ["quantizer.weight_bits"] = {2, 4} } }
qlab.report{ name = "bits", rows = rows }
)";
  EXPECT_NE(run(script({}, true), code).find("is not in the results store"), std::string::npos);
  EXPECT_EQ(run(script(), code), "");
  EXPECT_EQ(*fake_.calls, 2);
  std::filesystem::remove_all(dir_.file("reports"));
  EXPECT_EQ(run(script({}, true), code), "");
  EXPECT_EQ(*fake_.calls, 2) << "a report must not train or evaluate";
  EXPECT_TRUE(std::filesystem::exists(dir_.file("reports/bits/README.md")));
}

}  // namespace
}  // namespace qlab::test
