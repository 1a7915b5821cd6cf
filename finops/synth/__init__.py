"""Seeded generators of realistic usage data: the benchmark, the demo and the detector evaluation use them."""
