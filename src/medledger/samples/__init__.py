"""Seeded, entirely fictional data of a Chinese hospital group, for the demo and benchmarks."""
