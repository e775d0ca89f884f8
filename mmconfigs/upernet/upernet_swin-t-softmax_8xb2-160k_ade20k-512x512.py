# ADE20K UperNet 160k: Swin-T, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './upernet_swin-t-attnzero_8xb2-160k_ade20k-512x512.py'

# backbone weights: what mmconfigs/imagenet/swin-t-softmax_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/swin-t-softmax_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(attn='softmax', init_cfg=dict(checkpoint=pretrained)))
