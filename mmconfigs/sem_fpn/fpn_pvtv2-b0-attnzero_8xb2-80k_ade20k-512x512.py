# ADE20K Semantic FPN 80k, PVTv2 family: PVTv2-B0 with AttnZero in all 4 stages. The other PVTv2
# sizes and the softmax baselines inherit this file.
_base_ = '../_base_/fpn_8xb2-80k_ade20k-512x512.py'

# Backbone weights: the ImageNet-1k checkpoint that
#   python tools/train.py mmconfigs/imagenet/pvtv2-b0-attnzero_8xb128-300e_in1k.py
# writes. Use another one with --cfg-options model.backbone.init_cfg.checkpoint=PATH,
# or train from scratch with --cfg-options model.backbone.init_cfg=None.
pretrained = 'work_dirs/pvtv2-b0-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='AttnZeroPVTv2', arch='b0', attn='attnzero',
        drop_path_rate=0.1, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[32, 64, 160, 256]))
