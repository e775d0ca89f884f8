# ImageNet-1k: DynamicViT token pruning on DeiT-T with softmax attention; the recipe of its AttnZero
# sibling, fine-tuning the checkpoint of deit-t-softmax_8xb128-300e_in1k.py.
_base_ = './deit-t-attnzero-dynamicvit_8xb128-30e_in1k.py'

model = dict(attn='softmax')
load_from = 'work_dirs/deit-t-softmax_8xb128-300e_in1k/epoch_300.pth'
