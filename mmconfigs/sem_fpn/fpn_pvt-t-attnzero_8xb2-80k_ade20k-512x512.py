# ADE20K Semantic FPN 80k, PVT family: PVT-T with AttnZero in all 4 stages. The other PVT sizes and
# the softmax baselines inherit this file.
_base_ = '../_base_/fpn_8xb2-80k_ade20k-512x512.py'

# Backbone weights: the ImageNet-1k checkpoint that
#   python tools/train.py mmconfigs/imagenet/pvt-t-attnzero_8xb128-300e_in1k.py
# writes. Use another one with --cfg-options model.backbone.init_cfg.checkpoint=PATH,
# or train from scratch with --cfg-options model.backbone.init_cfg=None.
pretrained = 'work_dirs/pvt-t-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='AttnZeroPVT', arch='tiny', attn='attnzero',
        drop_path_rate=0.1, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512]))
