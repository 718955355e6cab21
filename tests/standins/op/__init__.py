"""Stand-in for rosinality's ``op`` package (its custom CUDA ops are not needed here)."""
