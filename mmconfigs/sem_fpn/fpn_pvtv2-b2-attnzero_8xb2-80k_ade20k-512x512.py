# ADE20K Semantic FPN 80k: PVTv2-B2, the PVTv2-B1 config with the 'b2' arch.
_base_ = './fpn_pvtv2-b1-attnzero_8xb2-80k_ade20k-512x512.py'

# backbone weights: what mmconfigs/imagenet/pvtv2-b2-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvtv2-b2-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(arch='b2', init_cfg=dict(checkpoint=pretrained)))
