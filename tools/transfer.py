#!/usr/bin/env python
"""From a search run to a downstream verdict in one command: every attention x task x seed trained
and evaluated through mmengine's Runner, tabulated in ``transfer.md`` / ``.csv`` with plots.

    python tools/transfer.py --run runs/search --backbone pvtv2-b0 --seeds 2 --out work_dirs/transfer

See ``python tools/transfer.py --help`` and :mod:`attnzero.transfer`.
"""
import sys

from attnzero.transfer import main

if __name__ == '__main__':
    sys.exit(main())
