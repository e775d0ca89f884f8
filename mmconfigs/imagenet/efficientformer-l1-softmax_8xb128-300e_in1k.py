# ImageNet-1k: EfficientFormer-L1, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './efficientformer-l1-attnzero_8xb128-300e_in1k.py'

model = dict(attn='softmax')
