# ADE20K UperNet 160k, EfficientFormer family: EfficientFormer-L1 with AttnZero in its attention
# block (the last block of stage 4; the conv stages have BatchNorm). EfficientFormer-L3 and the
# softmax baselines inherit this file.
_base_ = '../_base_/upernet_8xb2-160k_ade20k-512x512.py'

# Backbone weights: the ImageNet-1k checkpoint that
#   python tools/train.py mmconfigs/imagenet/efficientformer-l1-attnzero_8xb128-300e_in1k.py
# writes. Use another one with --cfg-options model.backbone.init_cfg.checkpoint=PATH,
# or train from scratch with --cfg-options model.backbone.init_cfg=None.
# The stem, downsampling convs and 4D blocks have BatchNorm: model.backbone.norm_eval=True keeps
# their ImageNet statistics (small per-GPU batches).
pretrained = 'work_dirs/efficientformer-l1-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(
        type='AttnZeroEfficientFormer', arch='l1', attn='attnzero',
        drop_path_rate=0.0, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[48, 96, 224, 448]),
    auxiliary_head=dict(in_channels=224))
