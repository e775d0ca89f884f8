# COCO RetinaNet 1x: PVTv2-B1, the PVTv2-B0 config with the 'b1' arch.
_base_ = './retinanet_pvtv2-b0-attnzero_fpn_1x_coco.py'

# backbone weights: what mmconfigs/imagenet/pvtv2-b1-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvtv2-b1-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(
    backbone=dict(arch='b1', init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[64, 128, 320, 512]))
