#!/usr/bin/env python
"""Write small, deterministic toy datasets in the real on-disk formats of COCO, ADE20K and ImageNet.

    python tools/make_toy_data.py data/toy                 # all three
    python tools/make_toy_data.py data/toy --task coco     # one of coco | ade | imagenet | all

The layout and contents: :mod:`attnzero.data.toy` (numpy and Pillow only), where the logic is.
"""
import sys

from attnzero.data.toy import main

if __name__ == '__main__':
    sys.exit(main())
