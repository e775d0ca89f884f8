# ADE20K UperNet 160k, CSWin family: CSWin-T with AttnZero in stages 1-2, softmax cross-shaped
# windows in stages 3-4 (the paper's placement). The other CSWin sizes and the softmax baselines
# inherit this file.
_base_ = '../_base_/upernet_8xb2-160k_ade20k-512x512.py'

# Backbone weights: the ImageNet-1k checkpoint that
#   python tools/train.py mmconfigs/imagenet/cswin-t-attnzero_8xb128-300e_in1k.py
# writes. Use another one with --cfg-options model.backbone.init_cfg.checkpoint=PATH,
# or train from scratch with --cfg-options model.backbone.init_cfg=None.
pretrained = 'work_dirs/cswin-t-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='AttnZeroCSwin', arch='tiny', attn=('attnzero', 'attnzero', 'softmax', 'softmax'),
        drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
