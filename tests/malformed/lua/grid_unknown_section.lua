qlab.sweep{ base = { model = "lenet" }, grid = { ["quantiser.weight_bits"] = { 2 } } }
