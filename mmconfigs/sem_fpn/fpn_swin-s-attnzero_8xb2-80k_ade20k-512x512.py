# ADE20K Semantic FPN 80k: Swin-S, the Swin-T config with the 'small' arch.
_base_ = './fpn_swin-t-attnzero_8xb2-80k_ade20k-512x512.py'

# backbone weights: what mmconfigs/imagenet/swin-s-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/swin-s-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(arch='small', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)))
