local parts = {}
for i = 1, 64 do parts[i] = string.rep("x", 1 << 27) end
