#!/usr/bin/env python
"""Write the per-backbone config files of ``mmconfigs/`` from one table (keeps them DRY and in sync).

    python mmconfigs/_generate.py            # (re)write mmconfigs/{imagenet,mask_rcnn,retinanet,sem_fpn,upernet}/
    python mmconfigs/_generate.py --check    # exit 1 if a file on disk differs from what would be written
    python mmconfigs/_generate.py --table    # print the Markdown table of every config (docs/mmconfigs.md)

Every generated file inherits one task base in ``mmconfigs/_base_/`` (which inherits the installed
mmdet / mmseg / mmpretrain bases) and sets only what differs per backbone: the backbone dict, the
input widths of the neck/heads, and the optimiser recipe where the papers used another one.
Nothing here imports OpenMMLab.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))


class Backbone(NamedTuple):
    type: str
    arch: str
    widths: Optional[Tuple[int, int, int, int]]  # stage widths (None: not used for dense tasks)
    attnzero: object  # the `attn=` of the AttnZero variant (paper placement)
    dp_cls: float  # drop-path rate for ImageNet training
    dp_dense: float  # drop-path rate for detection / segmentation
    recipe: str  # 'pvt' or 'swin' detection recipe
    ema: bool = False  # EMA of weights during ImageNet training (CSwin)


AZ4 = 'attnzero'
BACKBONES: Dict[str, Backbone] = {
    # DeiT: ImageNet only (the paper's DeiT result is classification)
    'deit-t': Backbone('AttnZeroDeiT', 'tiny', None, AZ4, 0.0, 0.1, 'pvt'),
    'deit-s': Backbone('AttnZeroDeiT', 'small', None, AZ4, 0.1, 0.1, 'pvt'),
    # PVT v1: AttnZero in all four stages (no spatial reduction needed at linear cost)
    'pvt-t': Backbone('AttnZeroPVT', 'tiny', (64, 128, 320, 512), AZ4, 0.1, 0.1, 'pvt'),
    'pvt-s': Backbone('AttnZeroPVT', 'small', (64, 128, 320, 512), AZ4, 0.1, 0.1, 'pvt'),
    'pvtv2-b0': Backbone('AttnZeroPVTv2', 'b0', (32, 64, 160, 256), AZ4, 0.1, 0.1, 'pvt'),
    'pvtv2-b1': Backbone('AttnZeroPVTv2', 'b1', (64, 128, 320, 512), AZ4, 0.1, 0.1, 'pvt'),
    'pvtv2-b2': Backbone('AttnZeroPVTv2', 'b2', (64, 128, 320, 512), AZ4, 0.1, 0.1, 'pvt'),
    # Swin: global AttnZero in stages 1-3, softmax windows in stage 4 (paper placement)
    'swin-t': Backbone('AttnZeroSwin', 'tiny', (96, 192, 384, 768),
                       ('attnzero', 'attnzero', 'attnzero', 'softmax'), 0.2, 0.2, 'swin'),
    'swin-s': Backbone('AttnZeroSwin', 'small', (96, 192, 384, 768),
                       ('attnzero', 'attnzero', 'attnzero', 'softmax'), 0.3, 0.3, 'swin'),
    # CSwin: AttnZero in stages 1-2, softmax cross-shaped windows in stages 3-4; EMA on ImageNet
    'cswin-t': Backbone('AttnZeroCSwin', 'tiny', (64, 128, 256, 512),
                        ('attnzero', 'attnzero', 'softmax', 'softmax'), 0.2, 0.2, 'swin', True),
    'cswin-s': Backbone('AttnZeroCSwin', 'small', (64, 128, 256, 512),
                        ('attnzero', 'attnzero', 'softmax', 'softmax'), 0.4, 0.3, 'swin', True),
}
ATTNS = ('softmax', 'attnzero')
DENSE = [k for k, b in BACKBONES.items() if b.widths is not None]

# task -> (folder, base file, file-name pattern, backbones)
TASKS = {
    'imagenet': ('imagenet', 'in1k_8xb128-300e.py', '{bb}_8xb128-300e_in1k.py', list(BACKBONES)),
    'mask_rcnn': ('mask_rcnn', 'mask-rcnn_fpn_1x_coco.py', 'mask-rcnn_{bb}_fpn_1x_coco.py', DENSE),
    'retinanet': ('retinanet', 'retinanet_fpn_1x_coco.py', 'retinanet_{bb}_fpn_1x_coco.py', DENSE),
    'sem_fpn': ('sem_fpn', 'fpn_8xb2-80k_ade20k-512x512.py', 'fpn_{bb}_8xb2-80k_ade20k-512x512.py',
                DENSE),
    'upernet': ('upernet', 'upernet_8xb2-160k_ade20k-512x512.py',
                'upernet_{bb}_8xb2-160k_ade20k-512x512.py', DENSE),
}
TASK_TEXT = {
    'imagenet': ('ImageNet-1k', 'TimmClassifier (mmpretrain)', '300 ep, AdamW 1e-3, bs 1024',
                 'top-1'),
    'mask_rcnn': ('COCO', 'Mask R-CNN + FPN', '1x (12 ep), bs 16', 'bbox / segm mAP'),
    'retinanet': ('COCO', 'RetinaNet + FPN', '1x (12 ep), bs 16', 'bbox mAP'),
    'sem_fpn': ('ADE20K', 'Semantic FPN', '80k it, AdamW 1e-4, bs 16', 'mIoU'),
    'upernet': ('ADE20K', 'UperNet + aux FCN', '160k it, AdamW 6e-5, bs 16', 'mIoU'),
}


TIMM_FAMILY = {'AttnZeroDeiT': 'deit', 'AttnZeroPVT': 'pvt', 'AttnZeroPVTv2': 'pvt_v2',
               'AttnZeroSwin': 'swin', 'AttnZeroCSwin': 'cswin'}
TIMM_ARCH = {'tiny': 'tiny', 'small': 'small', 'b0': 'b0', 'b1': 'b1', 'b2': 'b2'}


def timm_name(b: Backbone) -> str:
    """The timm registration of the same model (attnzero.models)."""
    return f'attnzero_{TIMM_FAMILY[b.type]}_{TIMM_ARCH[b.arch]}'


def variant_name(bb: str, attn: str) -> str:
    return f'{bb}-{attn}'


def config_path(task: str, bb: str, attn: str) -> str:
    folder, _, pattern, _ = TASKS[task]
    return os.path.join(folder, pattern.format(bb=variant_name(bb, attn)))


def _attn_repr(b: Backbone, attn: str) -> str:
    value = b.attnzero if attn == 'attnzero' else 'softmax'
    if isinstance(value, str):
        return repr(value)
    return '(' + ', '.join(repr(v) for v in value) + ')'


def _lines_backbone(b: Backbone, attn: str, dp: float, extra: Sequence[str] = (),
                    indent: str = '    ') -> List[str]:
    i2 = indent + '    '
    out = [f'{indent}backbone=dict(',
           f"{i2}type='{b.type}',",
           f"{i2}arch='{b.arch}',",
           f'{i2}attn={_attn_repr(b, attn)},',
           f'{i2}drop_path_rate={dp},']
    out += [i2 + e for e in extra]
    out.append(f'{indent}),')
    return out


def _header(task: str, bb: str, attn: str) -> List[str]:
    dataset, method, schedule, _ = TASK_TEXT[task]
    b = BACKBONES[bb]
    what = 'softmax baseline' if attn == 'softmax' else f'AttnZero (attn={_attn_repr(b, attn)})'
    model = f'timm {timm_name(b)}' if task == 'imagenet' else f'{b.type} arch={b.arch!r}'
    return [f'# {method} on {dataset}, {schedule}.',
            f'# Backbone: {model}, {what}.',
            '# Generated by mmconfigs/_generate.py from the table there; edit the table, not this file.']


def _pretrained_lines(bb: str, attn: str) -> List[str]:
    cls_rel = config_path('imagenet', bb, attn).replace(os.sep, '/')
    cls_name = os.path.splitext(os.path.basename(cls_rel))[0]
    return ['# Backbone weights: the ImageNet-1k checkpoint that',
            f'#   python tools/train.py mmconfigs/{cls_rel}',
            '# writes. Use another one with --cfg-options model.backbone.init_cfg.checkpoint=PATH,',
            '# or train from scratch with --cfg-options model.backbone.init_cfg=None.',
            f"pretrained = 'work_dirs/{cls_name}/epoch_300.pth'"]


INIT = "init_cfg=dict(type='Pretrained', checkpoint=pretrained),"
SWIN_DET_OPTIM = [
    '# Swin recipe: AdamW lr 1e-4, weight decay 0.05, none on norms and position tables',
    'optim_wrapper = dict(',
    '    optimizer=dict(lr=1e-4, weight_decay=0.05),',
    '    paramwise_cfg=dict(',
    '        norm_decay_mult=0.0,',
    '        custom_keys={',
    "            'absolute_pos_embed': dict(decay_mult=0.0),",
    "            'relative_position_bias_table': dict(decay_mult=0.0),",
    '        }))',
]


def render(task: str, bb: str, attn: str) -> str:
    b = BACKBONES[bb]
    _, base, _, _ = TASKS[task]
    out = _header(task, bb, attn) + [f"_base_ = '../_base_/{base}'", '']
    if task == 'imagenet':
        out += ['model = dict(',
                f"    model_name='{timm_name(b)}',",
                f'    attn={_attn_repr(b, attn)},',
                f'    drop_path_rate={b.dp_cls},',
                ')']
        if b.ema:
            out += ['# CSwin keeps an exponential moving average of the weights (evaluated and saved)',
                    "custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]"]
    else:
        widths = '[' + ', '.join(str(w) for w in b.widths) + ']'
        out += _pretrained_lines(bb, attn) + ['', 'model = dict(']
        out += _lines_backbone(b, attn, b.dp_dense, extra=[INIT])
        if task in ('mask_rcnn', 'retinanet', 'sem_fpn'):
            out += [f'    neck=dict(in_channels={widths}),']
        else:
            out += [f'    decode_head=dict(in_channels={widths}),',
                    f'    auxiliary_head=dict(in_channels={b.widths[2]}),']
        out += [')']
        if task in ('mask_rcnn', 'retinanet') and b.recipe == 'swin':
            out += SWIN_DET_OPTIM
    return '\n'.join(out) + '\n'


def all_configs() -> Dict[str, str]:
    files = {}
    for task, (_, _, _, bbs) in TASKS.items():
        for bb in bbs:
            for attn in ATTNS:
                files[config_path(task, bb, attn)] = render(task, bb, attn)
    return files


def _placement(b: Backbone) -> str:
    if isinstance(b.attnzero, str):
        return 'all blocks' if b.type == 'AttnZeroDeiT' else 'all 4 stages'
    az = [i + 1 for i, a in enumerate(b.attnzero) if a == 'attnzero']
    return f'stages {az[0]}-{az[-1]} (others softmax)'


def table() -> str:
    """Markdown: one table per task, one row per backbone, both attention variants."""
    out = []
    for task, (folder, base, _, bbs) in TASKS.items():
        dataset, method, schedule, metric = TASK_TEXT[task]
        out += [f'**{method}, {dataset}** ({schedule}; {metric}; base `mmconfigs/_base_/{base}`)', '',
                '| backbone | AttnZero placement | softmax baseline | AttnZero |', '|---|---|---|---|']
        for bb in bbs:
            b = BACKBONES[bb]
            place = _placement(b)
            cells = [f'`mmconfigs/{config_path(task, bb, a)}`'.replace(os.sep, '/') for a in ATTNS]
            out.append(f'| {b.type} `{b.arch}` | {place} | {cells[0]} | {cells[1]} |')
        out.append('')
    return '\n'.join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--check', action='store_true', help='only compare with the files on disk')
    p.add_argument('--table', action='store_true', help='print the Markdown table of configs')
    args = p.parse_args(argv)
    if args.table:
        print(table(), end='')
        return 0
    stale = []
    for rel, text in all_configs().items():
        path = os.path.join(HERE, rel)
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            stale.append(rel)
            if not args.check:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, 'w') as f:
                    f.write(text)
    if args.check:
        for rel in stale:
            print(f'out of date: mmconfigs/{rel}')
        return 1 if stale else 0
    print(f'[_generate] {len(all_configs())} configs, {len(stale)} written')
    return 0


if __name__ == '__main__':
    sys.exit(main())
