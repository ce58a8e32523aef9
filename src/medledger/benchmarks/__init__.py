"""Benchmarks behind ``medledger bench``: they print JSON and run a peer side by side."""
