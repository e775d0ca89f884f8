#!/usr/bin/env python
"""ViT-Slim-style slimming of the proxy DeiT (issue 21): soft masks on heads and MLP units with an
L1 budget, cut to a FLOPs target, a static model fine-tuned.

    python tools/slim.py --out docs/slim/default                       # the default proxy DeiT, Trial-105
    python tools/slim.py --preset tiny --out /tmp/slim --shape e32:hd16:h2,2:r2,2    # seconds

Every option: ``python tools/slim.py --help``. The logic is :func:`attnzero.search.cli.slim_main`
over :func:`attnzero.search.slim.run_slim`.
"""
import sys

from attnzero.search.cli import slim_main as main

if __name__ == '__main__':
    sys.exit(main())
