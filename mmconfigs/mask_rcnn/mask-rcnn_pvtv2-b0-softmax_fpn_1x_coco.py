# COCO Mask R-CNN 1x: PVTv2-B0, softmax baseline (the AttnZero config with attn='softmax').
_base_ = './mask-rcnn_pvtv2-b0-attnzero_fpn_1x_coco.py'

# backbone weights: what mmconfigs/imagenet/pvtv2-b0-softmax_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvtv2-b0-softmax_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(attn='softmax', init_cfg=dict(checkpoint=pretrained)))
