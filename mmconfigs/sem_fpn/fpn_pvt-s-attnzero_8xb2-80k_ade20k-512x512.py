# ADE20K Semantic FPN 80k: PVT-S, the PVT-T config with the 'small' arch.
_base_ = './fpn_pvt-t-attnzero_8xb2-80k_ade20k-512x512.py'

# backbone weights: what mmconfigs/imagenet/pvt-s-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvt-s-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
