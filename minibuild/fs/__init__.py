"""Confined work on root trees: the one path resolver, layer apply, snapshots and diffs, user databases."""
