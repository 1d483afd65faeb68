qlab.sweep("lenet")
