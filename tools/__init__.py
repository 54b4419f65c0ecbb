"""The project's own scripts: `python -m tools.bench <name>` (speed) and `python -m tools.eval` (accuracy).

Not part of the installed package; run them from the repository root.
"""
