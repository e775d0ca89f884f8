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

from typing import Optional, Sequence

import torch

from attnzero.flops import count_flops

from .mmconfig import arg_parser, build_model, dummy_data_samples, input_hw, write_json

__all__ = ['get_flops', 'main']


def _params_flops(model, inputs, **kw):
    c = count_flops(model, inputs=inputs, **kw)
    return c.params, c.flops


def get_flops(config, shape=None, cfg_options=None, genome=None) -> dict:
    """Params (M) and GMACs of the backbone and of the whole model (``mode='tensor'``) at ``shape``
    (H [W]; default: the task's test resolution)."""
    cfg, scope, model = build_model(config, cfg_options, genome)
    h, w = input_hw(scope, shape)
    x = torch.zeros(1, 3, h, w)
    out = {'config': config, 'scope': scope, 'shape': [h, w]}
    backbone = getattr(model, 'backbone', None)
    if backbone is not None:
        p, f = _params_flops(backbone, (x,))
        out.update(backbone_mparams=p / 1e6, backbone_gmacs=f / 2e9)
    p, f = _params_flops(model, (x, dummy_data_samples(scope, h, w)), mode='tensor')
    out.update(mparams=p / 1e6, gmacs=f / 2e9, gflops=f / 1e9)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = arg_parser('Params and FLOPs of an mmconfigs/ model.').parse_args(argv)
    r = get_flops(args.config, args.shape, args.cfg_options, args.genome)
    h, w = r['shape']
    print(f'config: {args.config}')
    print(f'input shape: 1x3x{h}x{w}')
    if 'backbone_gmacs' in r:
        print(f'backbone: {r["backbone_mparams"]:.2f} M params, {r["backbone_gmacs"]:.2f} GMACs')
    print(f'model:    {r["mparams"]:.2f} M params, {r["gmacs"]:.2f} GMACs '
          f'(= "GFLOPs" in papers), {r["gflops"]:.2f} GFLOPs (2 per multiply-add)')
    write_json(args.json, r)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
