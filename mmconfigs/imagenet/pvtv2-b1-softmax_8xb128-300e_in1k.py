# ImageNet-1k: PVTv2-B1, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './pvtv2-b1-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
