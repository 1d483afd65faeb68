qlab.sweep{ base = { model = "lenet" }, grid = { ["quantizer.weight_bits"] = {} } }
