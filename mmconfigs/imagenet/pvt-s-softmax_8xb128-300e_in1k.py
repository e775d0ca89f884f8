# ImageNet-1k: PVT-S, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './pvt-s-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
