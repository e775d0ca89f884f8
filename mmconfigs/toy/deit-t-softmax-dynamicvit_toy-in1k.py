# Toy DynamicViT run of deit-t-attnzero-dynamicvit_toy-in1k.py with softmax attention.
_base_ = './deit-t-attnzero-dynamicvit_toy-in1k.py'

model = dict(attn='softmax')
