# Toy ImageNet run (the data and recipe of pvtv2-b0-attnzero_toy-in1k.py) of DynamicViT on DeiT-T
# with AttnZero (Trial-105; its token-masked form in training): 64 px images, 16 patch tokens pruned
# to 11, 7 and 5, trained from scratch with the keep-ratio and distillation losses. Data from
#   python tools/make_toy_data.py data/toy --task imagenet (or set ATTNZERO_TOY_ROOT)
#   python tools/train.py mmconfigs/toy/deit-t-attnzero-dynamicvit_toy-in1k.py
_base_ = './pvtv2-b0-attnzero_toy-in1k.py'

model = dict(
    type='DynamicViTClassifier',
    model_name='attnzero_deit_tiny',
    attn='attnzero',
    token_reduction=dict(type='dynamicvit', keep=0.7),
    ratio_weight=2.0,
    distill_weight=0.5)
