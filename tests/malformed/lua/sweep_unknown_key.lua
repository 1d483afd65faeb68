qlab.sweep{ base = { model = "lenet" }, gird = {} }
