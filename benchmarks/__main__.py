"""``python -m benchmarks``: run every benchmark, print a table, write results/latest.json."""

from __future__ import annotations

import sys

from benchmarks.timeline_bench import main

if __name__ == "__main__":
    sys.exit(main())
