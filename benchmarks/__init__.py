"""Benchmark scripts of koodrive_async; ``python -m benchmarks`` runs them all.

Not part of the installed package: run them from a checkout (see README,
"Performance"). Each script also runs on its own, e.g.
``python benchmarks/bench_session_overhead.py``.
"""
