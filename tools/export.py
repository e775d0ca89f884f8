#!/usr/bin/env python
"""Export an attnzero model to torch.export (.pt2) or ONNX and verify it against eager.

    python tools/export.py attnzero_pvt_v2_b0 --format onnx --img-size 224 --dynamic
    python tools/export.py attnzero_swin_tiny --attn softmax --format pt2
    python tools/export.py attnzero_deit_tiny --genome 'i3n303:...' --format onnx --out deit.onnx

Prints the maximum error of the exported model against eager at every checked input size and
exits 1 if it exceeds ``--tol`` (1e-4). The logic is :mod:`attnzero.models.export`.
"""
import sys

from attnzero.models.export import main

if __name__ == '__main__':
    sys.exit(main())
