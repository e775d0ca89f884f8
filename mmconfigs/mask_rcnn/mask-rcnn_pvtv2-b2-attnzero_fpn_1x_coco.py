# COCO Mask R-CNN 1x: PVTv2-B2, the PVTv2-B1 config with the 'b2' arch.
_base_ = './mask-rcnn_pvtv2-b1-attnzero_fpn_1x_coco.py'

# backbone weights: what mmconfigs/imagenet/pvtv2-b2-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvtv2-b2-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(arch='b2', init_cfg=dict(checkpoint=pretrained)))
