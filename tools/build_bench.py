#!/usr/bin/env python
"""Build (or grow, or finalize) an Attn-Bench-101 directory.

Samples genomes from the search space (de-duplicated by functional equivalence), evaluates each with
the search's evaluation pipeline (program check -> static linear check -> proxy training of every
proxy ViT with the rejection protocol) for every seed and epoch budget, and appends one record per
genome to ``OUT/bench.jsonl`` (atomic line append + fsync). Resumable: run the same command again
(settings flags may be left out; they are read from ``OUT/build.json``) and it skips every genome
already in the file. The manifest (``OUT/MANIFEST.json``) is rewritten atomically at the end, or
alone with ``--finalize``.

Examples::

    # the shipped bench (search defaults: embedded relational proxy, DeiT + PVT, 3 epochs, 1 seed)
    nice -n 10 python tools/build_bench.py --out attnzero/data/attn-bench-101 -n 500 --preset default
    python tools/build_bench.py --out attnzero/data/attn-bench-101 -n 600     # grow it (resume)
    python tools/build_bench.py --out attnzero/data/attn-bench-101 --finalize # manifest only
    python tools/build_bench.py --out /tmp/b -n 3 --preset tiny --workers 2   # local workers
    python tools/build_bench.py --out /tmp/b -n 3 --preset tiny --dask tcp://host:8786

The logic is :func:`attnzero.bench.cli.build_main` over :mod:`attnzero.bench.build`.
"""
import sys

from attnzero.bench.cli import build_main as main

if __name__ == '__main__':
    sys.exit(main())
