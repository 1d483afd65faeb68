qlab.sweep{ base = { model = "lenet", train = { epochs = "two" } } }
