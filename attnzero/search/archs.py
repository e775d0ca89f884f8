"""Proxy ViTs: tiny configurations of the project's backbones (:mod:`attnzero.models`).

The search scores a candidate attention inside several architectures (the paper's
multi-architecture objective). :func:`build_proxy_model` is the one place that turns
``(arch, attention, genome, image size, classes)`` into a model; every stage of every proxy uses the
candidate attention.

The ``identity`` attention of the zoo (``out = v``: no token mixing) is the reference point of the
"the proxy needs token mixing" check.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import torch
from torch import nn

from attnzero import models
from attnzero.flops import count_flops

__all__ = ['ARCHS', 'PROXY_ARCHS', 'build_proxy_model', 'ArchError']


class ArchError(ValueError):
    """Unknown proxy architecture or bad override."""


# Tiny configurations: a few seconds of CPU training per candidate on the embedded 16x16 proxy.
# Every value can be overridden per architecture from the search config (``arch_overrides``).
PROXY_ARCHS: Dict[str, Dict[str, Any]] = {
    # DeiT: patch 4 -> 4x4 tokens + cls token; average pooling of the patch tokens (a cls-token
    # readout learns this task far more slowly within a few hundred steps)
    'deit': dict(patch_size=4, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
                 global_pool='avg', drop_path_rate=0.0),
    # PVT v1: two stages (4x4 then 2x2 tokens), average pooling (so that a no-mixing model is not
    # trivially blind: it sees every patch, just not together)
    'pvt': dict(patch_size=4, embed_dims=(64, 64), depths=(1, 1), num_heads=(2, 2),
                mlp_ratios=(4, 4), sr_ratios=(1, 1), global_pool='avg', drop_path_rate=0.0),
    'pvt_v2': dict(embed_dims=(32, 64), depths=(1, 1), num_heads=(1, 2), mlp_ratios=(2, 2),
                   sr_ratios=(1, 1), global_pool='avg', drop_path_rate=0.0),
    'swin': dict(patch_size=4, embed_dim=32, depths=(1, 1), num_heads=(1, 2), window_size=2,
                 mlp_ratio=2.0, global_pool='avg', drop_path_rate=0.0),
    'cswin': dict(embed_dim=32, depths=(1, 1), num_heads=(2, 4), split_sizes=(1, 2),
                  mlp_ratio=2.0, global_pool='avg', drop_path_rate=0.0),
}
ARCHS = tuple(PROXY_ARCHS)

log = logging.getLogger('attnzero.search')


def _model_class(arch: str):
    families = getattr(models, 'FAMILIES', {})
    if arch not in families:
        raise ArchError(f'unknown proxy architecture {arch!r}; known: {", ".join(ARCHS)}')
    return families[arch][0]


def build_proxy_model(arch: str, attn: str, genome: Optional[str], img_size: int,
                      num_classes: int, overrides: Optional[Dict[str, Any]] = None,
                      patch_size: Optional[int] = None, shape: Optional[str] = None) -> nn.Module:
    """A tiny ``arch`` classifier whose every stage uses ``attn`` (``'attnzero'`` with the canonical
    ``genome`` text, or a zoo name such as ``'softmax'``, ``'linear'``, ``'identity'``).

    ``patch_size``: the proxy's tokenisation (:attr:`attnzero.search.proxies.ProxyData.patch_size`),
    applied to the architectures with a patch-embedding size (DeiT, PVT, Swin); ``overrides`` win.

    ``shape``: a ViT shape text (:class:`attnzero.space.shape.ViTShape`, the joint search's) for the
    DeiT proxy: its width, depth, per-block heads and MLP ratios and head width replace those of
    the table and of ``overrides`` (patch size, pooling and the rest stay).
    """
    if arch not in PROXY_ARCHS:
        raise ArchError(f'unknown proxy architecture {arch!r}; known: {", ".join(ARCHS)}')
    cls = _model_class(arch)
    kw = dict(PROXY_ARCHS[arch])
    if patch_size is not None and 'patch_size' in kw:
        kw['patch_size'] = int(patch_size)
    kw.update(overrides or {})
    if shape is not None:
        if arch != 'deit':
            raise ArchError(f'proxy {arch!r} takes no ViT shape (shape={shape!r}): only deit does')
        for k in ('embed_dim', 'depth', 'num_heads', 'mlp_ratio', 'head_dim'):
            kw.pop(k, None)
        kw['shape'] = shape
    kw.update(img_size=img_size, num_classes=num_classes, attn=attn)
    if 'depths' in kw and 'out_indices' not in kw:  # hierarchical: one feature map per stage
        kw['out_indices'] = tuple(range(len(kw['depths'])))
    if attn == 'attnzero':
        if genome is None:
            raise ArchError('attn="attnzero" needs a genome')
        kw['genome'] = genome
    try:
        return cls(**kw)
    except TypeError as e:
        raise ArchError(f'proxy {arch!r}: bad constructor arguments {sorted(kw)}: {e}') from e


def model_flops_per_image(model: nn.Module, img_size: int) -> Optional[float]:
    """Forward FLOPs for one image (:func:`attnzero.flops.count_flops`), or ``None`` when they
    cannot be counted (logged as a warning).

    An unknown cost is recorded as unknown, never replaced by an estimate: the compute summary
    (:func:`attnzero.search.report.efficiency`) leaves it out and counts it. Cost accounting never
    fails the evaluation itself.
    """
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float(count_flops(model, torch.zeros(1, 3, img_size, img_size)).flops)
    except Exception as e:  # noqa: BLE001 - cost accounting must never fail an evaluation
        log.warning('cannot count the FLOPs of %s at %d px (%s: %s): recorded as unknown',
                    type(model).__name__, img_size, type(e).__name__, e)
        return None
    finally:
        model.train(was)
