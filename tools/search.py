#!/usr/bin/env python
"""Multi-objective evolutionary search of linear attention (pymoo NSGA-II).

    python tools/search.py                                   # embedded default
    python tools/search.py --preset tiny --run-dir /tmp/s    # seconds (test configuration)
    python tools/search.py --resume runs/search-20250101-120000   # continue after a crash/kill

Every option and example: ``python tools/search.py --help``. The logic is
:func:`attnzero.search.cli.search_main` over :mod:`attnzero.search`.
"""
import sys

from attnzero.search.cli import search_main as main

if __name__ == '__main__':
    sys.exit(main())
