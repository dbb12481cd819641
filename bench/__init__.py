"""Benchmarks (``make bench``): HubLink's figures measured beside baselines in the same run."""
