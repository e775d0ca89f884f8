#!/usr/bin/env python
"""Parameters and FLOPs of the model of any ``mmconfigs/`` config at its test resolution.

    python tools/get_flops.py CONFIG [--shape H [W]] [--json out.json]

Counts every matrix product and convolution at the dispatcher level (``attnzero.flops``, built on
``torch.utils.flop_counter``): the matmuls and einsums of linear attentions are included. Reported
for the backbone alone and for the whole model (backbone + neck + heads, one forward in
``mode='tensor'``). "GFLOPs" in the papers' tables are GMACs (one multiply-add = 1); both are printed.

Default shapes (the ones the papers report): detection 1280x800 (W x H, i.e. ``--shape 800 1280``),
segmentation 512x512, classification 224x224.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import attnzero.compat  # noqa: E402,F401

DEFAULT_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 512), 'mmpretrain': (224, 224)}


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description='Params and FLOPs of an mmconfigs/ model.')
    p.add_argument('config')
    p.add_argument('--shape', type=int, nargs='+', default=None,
                   help='input H [W] (default: the task\'s test resolution)')
    p.add_argument('--json', help='also write the numbers to this JSON file')
    p.add_argument('--genome', help='AttnZero genome text for the backbone (as in tools/train.py)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def counter():
    """``count_flops(model, inputs, **kw) -> (params, flops)`` from attnzero.flops, or torch's own."""
    try:
        from attnzero.flops import count_flops

        def run(model, inputs, **kw):
            c = count_flops(model, inputs=inputs, **kw)
            return c.params, c.flops
        return run
    except ImportError:  # pragma: no cover - attnzero.flops is part of the package
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        def run(model, inputs, **kw):
            was = model.training
            model.eval()
            mode = FlopCounterMode(display=False)
            with torch.no_grad(), mode:
                model(*inputs, **kw)
            model.train(was)
            return sum(p.numel() for p in model.parameters()), mode.get_total_flops()
        return run


def dummy_data_samples(scope: str, h: int, w: int):
    """The metadata a model needs in ``mode='tensor'`` (two-stage detectors read image shapes)."""
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                        batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))
        return [s]
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample
        return [SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                            batch_input_shape=(h, w)))]
    return None


def build_model(config, cfg_options=None, genome=None):
    """(cfg, scope, model in eval mode on CPU) for a config; the backbone is not initialised from a file."""
    from mmengine.config import Config
    from attnzero.mm.runner import set_genome, setup_scope, speed_up_base_lookup

    speed_up_base_lookup()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    set_genome(cfg, genome)
    scope = setup_scope(cfg)
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.init_cfg = None
    from mmengine.registry import MODELS
    if cfg.get('data_preprocessor') is not None:  # what Runner does with a top-level one
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(cfg.model)
    model.eval()
    return cfg, scope, model


def get_flops(config, shape=None, cfg_options=None, genome=None) -> dict:
    import torch

    cfg, scope, model = build_model(config, cfg_options, genome)
    if shape is None:
        h, w = DEFAULT_SHAPES[scope]
    else:
        h, w = (shape[0], shape[0]) if len(shape) == 1 else shape[:2]
    run = counter()
    x = torch.zeros(1, 3, h, w)
    out = {'config': config, 'scope': scope, 'shape': [h, w]}
    backbone = getattr(model, 'backbone', None)
    if backbone is not None:
        p, f = run(backbone, (x,))
        out.update(backbone_mparams=p / 1e6, backbone_gmacs=f / 2e9)
    p, f = run(model, (x, dummy_data_samples(scope, h, w)), mode='tensor')
    out.update(mparams=p / 1e6, gmacs=f / 2e9, gflops=f / 1e9)
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    r = get_flops(args.config, args.shape, args.cfg_options, args.genome)
    h, w = r['shape']
    print(f'config: {args.config}')
    print(f'input shape: 1x3x{h}x{w}')
    if 'backbone_gmacs' in r:
        print(f'backbone: {r["backbone_mparams"]:.2f} M params, {r["backbone_gmacs"]:.2f} GMACs')
    print(f'model:    {r["mparams"]:.2f} M params, {r["gmacs"]:.2f} GMACs '
          f'(= "GFLOPs" in papers), {r["gflops"]:.2f} GFLOPs (2 per multiply-add)')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(r, f, indent=2)
    return r


if __name__ == '__main__':
    main()
