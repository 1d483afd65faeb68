local a = qlab.args{ epochs = 1 }
