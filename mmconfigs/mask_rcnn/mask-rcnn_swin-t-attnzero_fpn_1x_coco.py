# COCO Mask R-CNN 1x, Swin family: Swin-T with AttnZero (global) in stages 1-3, softmax windows in
# stage 4 (the paper's placement). The other Swin sizes and the softmax baselines inherit this
# file.
_base_ = '../_base_/mask-rcnn_fpn_1x_coco.py'

# Backbone weights: the ImageNet-1k checkpoint that
#   python tools/train.py mmconfigs/imagenet/swin-t-attnzero_8xb128-300e_in1k.py
# writes. Use another one with --cfg-options model.backbone.init_cfg.checkpoint=PATH,
# or train from scratch with --cfg-options model.backbone.init_cfg=None.
pretrained = 'work_dirs/swin-t-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='AttnZeroSwin', arch='tiny', attn=('attnzero', 'attnzero', 'attnzero', 'softmax'),
        drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
# Swin recipe: AdamW lr 1e-4, weight decay 0.05, none on norms and position tables
optim_wrapper = dict(
    optimizer=dict(lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
        }))
