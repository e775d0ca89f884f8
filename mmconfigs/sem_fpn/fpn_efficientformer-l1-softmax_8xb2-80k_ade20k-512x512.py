# ADE20K Semantic FPN 80k: EfficientFormer-L1, softmax baseline (the AttnZero config with
# attn='softmax').
_base_ = './fpn_efficientformer-l1-attnzero_8xb2-80k_ade20k-512x512.py'

# backbone weights: what mmconfigs/imagenet/efficientformer-l1-softmax_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/efficientformer-l1-softmax_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(attn='softmax', init_cfg=dict(checkpoint=pretrained)))
