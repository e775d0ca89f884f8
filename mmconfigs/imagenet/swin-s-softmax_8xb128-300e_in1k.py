# ImageNet-1k: Swin-S, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './swin-s-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
