"""Accuracy evaluation: suites (gsm8k, hotpotqa, arith) × strategies on one model, resumable.

Run `python -m tools.eval --help`; docs/benchmarks.md has the commands behind the published figures.
"""
