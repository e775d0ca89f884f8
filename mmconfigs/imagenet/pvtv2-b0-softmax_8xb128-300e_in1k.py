# ImageNet-1k: PVTv2-B0, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './pvtv2-b0-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
