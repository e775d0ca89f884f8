# ADE20K UperNet 160k: PVTv2-B1, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './upernet_pvtv2-b1-attnzero_8xb2-160k_ade20k-512x512.py'

# backbone weights: what mmconfigs/imagenet/pvtv2-b1-softmax_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvtv2-b1-softmax_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(attn='softmax', init_cfg=dict(checkpoint=pretrained)))
