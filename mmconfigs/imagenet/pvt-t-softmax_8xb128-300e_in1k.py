# ImageNet-1k: PVT-T, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './pvt-t-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
