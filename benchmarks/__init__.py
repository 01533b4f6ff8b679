"""Benchmarks for alert-jobs; run with ``make bench`` (``python -m benchmarks``).

House rule: every figure is a median, reported next to a named baseline measured in
the same run on the same machine, as a ratio. There are no pass/fail timing asserts;
machines are too noisy for absolute numbers to mean much on their own.
"""
