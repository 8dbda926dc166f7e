"""Evaluation and benchmarks, outside the runtime package: `make eval` (evaluation.py), `make bench` (bench.py and
its helpers)."""
