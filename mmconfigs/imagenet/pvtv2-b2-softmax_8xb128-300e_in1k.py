# ImageNet-1k: PVTv2-B2, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './pvtv2-b2-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
