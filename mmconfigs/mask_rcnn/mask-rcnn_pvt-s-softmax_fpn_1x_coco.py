# COCO Mask R-CNN 1x: PVT-S, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './mask-rcnn_pvt-s-attnzero_fpn_1x_coco.py'

# backbone weights: what mmconfigs/imagenet/pvt-s-softmax_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvt-s-softmax_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(attn='softmax', init_cfg=dict(checkpoint=pretrained)))
