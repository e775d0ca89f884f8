# COCO RetinaNet 1x: EfficientFormer-L3 (AttnZero in its four attention blocks), the
# EfficientFormer-L1 config with the 'l3' arch.
_base_ = './retinanet_efficientformer-l1-attnzero_fpn_1x_coco.py'

# backbone weights: what mmconfigs/imagenet/efficientformer-l3-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/efficientformer-l3-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='l3', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512]))
