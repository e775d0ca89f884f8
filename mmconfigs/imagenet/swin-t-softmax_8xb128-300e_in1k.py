# ImageNet-1k: Swin-T, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './swin-t-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
