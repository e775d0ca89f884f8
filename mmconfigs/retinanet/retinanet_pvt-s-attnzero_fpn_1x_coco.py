# COCO RetinaNet 1x: PVT-S, the PVT-T config with the 'small' arch.
_base_ = './retinanet_pvt-t-attnzero_fpn_1x_coco.py'

# backbone weights: what mmconfigs/imagenet/pvt-s-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/pvt-s-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
