"""The model of an ``mmconfigs/`` config, built for measurement (``tools/get_flops.py``,
``tools/benchmark_fps.py``): on CPU in eval mode, backbone not initialised from a file, with the
metadata ``mode='tensor'`` needs, at the task's test resolution unless a shape is given."""
from __future__ import annotations

import argparse
import json
from typing import Optional, Sequence, Tuple

from attnzero.mm.runner import set_genome, setup_scope, speed_up_base_lookup

__all__ = ['DEFAULT_SHAPES', 'arg_parser', 'build_model', 'dummy_data_samples', 'input_hw',
           'write_json']

#: (H, W) the papers report: detection 1280x800 (W x H), segmentation 512x512, classification 224x224
DEFAULT_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 512), 'mmpretrain': (224, 224)}


def arg_parser(description: str) -> argparse.ArgumentParser:
    """``CONFIG [--shape H [W]] [--json OUT] [--genome G] [--cfg-options k=v ...]``; a tool adds
    its own options."""
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description=description)
    p.add_argument('config')
    p.add_argument('--shape', type=int, nargs='+', default=None,
                   help='input H [W] (default: the task\'s test resolution)')
    p.add_argument('--json', help='also write the result to this JSON file')
    p.add_argument('--genome', help='AttnZero genome text for the backbone (as in tools/train.py)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p


def input_hw(scope: str, shape: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """``(H, W)``: ``shape`` (one number: square) or the scope's :data:`DEFAULT_SHAPES`."""
    if shape is None:
        return DEFAULT_SHAPES[scope]
    return (shape[0], shape[0]) if len(shape) == 1 else tuple(shape[:2])


def write_json(path: Optional[str], result: dict) -> None:
    if path:
        with open(path, 'w') as f:
            json.dump(result, f, indent=2)


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
    from mmengine.registry import MODELS

    speed_up_base_lookup()
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    set_genome(cfg, genome)
    scope = setup_scope(cfg)
    if isinstance(cfg.model.get('backbone'), dict):
        cfg.model.backbone.init_cfg = None
    if cfg.get('data_preprocessor') is not None:  # what Runner does with a top-level one
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(cfg.model)
    model.eval()
    return cfg, scope, model
