# COCO RetinaNet 1x, CSWin family: CSWin-T with AttnZero in stages 1-2, softmax cross-shaped
# windows in stages 3-4 (the paper's placement). The other CSWin sizes and the softmax baselines
# inherit this file.
_base_ = '../_base_/retinanet_fpn_1x_coco.py'

# Backbone weights: the ImageNet-1k checkpoint that
#   python tools/train.py mmconfigs/imagenet/cswin-t-attnzero_8xb128-300e_in1k.py
# writes. Use another one with --cfg-options model.backbone.init_cfg.checkpoint=PATH,
# or train from scratch with --cfg-options model.backbone.init_cfg=None.
pretrained = 'work_dirs/cswin-t-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='AttnZeroCSwin', arch='tiny', attn=('attnzero', 'attnzero', 'softmax', 'softmax'),
        drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 256, 512]))
# Swin recipe: AdamW lr 1e-4, weight decay 0.05, none on norms and position tables
optim_wrapper = dict(
    optimizer=dict(lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
        }))
