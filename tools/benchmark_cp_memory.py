#!/usr/bin/env python
"""Peak CPU memory of one detector training step with and without the backbone's ``with_cp``.

    python tools/benchmark_cp_memory.py \
        mmconfigs/mask_rcnn/mask-rcnn_pvt-t-attnzero_fpn_1x_coco.py \
        mmconfigs/mask_rcnn/mask-rcnn_swin-t-attnzero_fpn_1x_coco.py \
        [--shape 800 1333] [--out docs/benchmarks/with_cp_memory_cpu]

Writes OUT.md / .csv / .png. The logic is :mod:`attnzero.perf.memory`.
"""
import sys

from attnzero.perf.memory import main

if __name__ == '__main__':
    sys.exit(main())
