# ImageNet-1k: DeiT-S, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './deit-s-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
