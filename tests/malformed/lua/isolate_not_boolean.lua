qlab.sweep{ base = { model = "lenet" }, isolate = "yes" }
