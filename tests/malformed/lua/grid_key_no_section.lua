qlab.sweep{ base = { model = "lenet" }, grid = { weight_bits = { 2, 4 } } }
