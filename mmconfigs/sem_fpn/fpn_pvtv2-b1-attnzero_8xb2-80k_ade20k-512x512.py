# ADE20K Semantic FPN 80k: PVTv2-B1, the PVTv2-B0 config with the 'b1' arch.
_base_ = './fpn_pvtv2-b0-attnzero_8xb2-80k_ade20k-512x512.py'

# backbone weights: what mmconfigs/imagenet/pvtv2-b1-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvtv2-b1-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='b1', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512]))
