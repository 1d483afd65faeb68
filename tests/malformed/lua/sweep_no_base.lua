qlab.sweep{ name = "nobase" }
