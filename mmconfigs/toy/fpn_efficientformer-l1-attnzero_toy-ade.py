# Toy ADE20K run of Semantic FPN with the EfficientFormer-L1 backbone (AttnZero in its attention
# block; its BatchNorm conv stages trained from scratch) on CPU: the PVTv2-B0 toy overlay (128x128
# crops, 4 of the ADE classes, neck/head narrowed to 64 channels, 100 iterations) with the backbone
# swapped, as mmdet's configs swap one (its Semantic FPN recipe is the EfficientFormer config's: the
# two real configs differ only in the backbone and the neck's input widths). Data from
#   python tools/make_toy_data.py data/toy --task ade      (or set ATTNZERO_TOY_ROOT)
#   python tools/train.py mmconfigs/toy/fpn_efficientformer-l1-attnzero_toy-ade.py
_base_ = './fpn_pvtv2-b0-attnzero_toy-ade.py'

pretrained = None  # trained from scratch (the overlay sets init_cfg=None)
model = dict(
    backbone=dict(type='AttnZeroEfficientFormer', arch='l1', attn='attnzero'),
    neck=dict(in_channels=[48, 96, 224, 448]))
