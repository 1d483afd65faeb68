qlab.report{ name = "r", sweeps = { "none" }, plots = { { kind = "pie", name = "p", x = "a", y = "b" } } }
