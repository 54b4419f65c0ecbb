"""Speed benchmarks: `python -m tools.bench {overhead,imports,concurrency,sandbox,local}`.

Each prints a markdown table (stdout) ready for docs/benchmarks.md, then a one-line summary.
"""
