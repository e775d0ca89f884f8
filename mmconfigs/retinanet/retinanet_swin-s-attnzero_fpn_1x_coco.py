# COCO RetinaNet 1x: Swin-S, the Swin-T config with the 'small' arch.
_base_ = './retinanet_swin-t-attnzero_fpn_1x_coco.py'

# backbone weights: what mmconfigs/imagenet/swin-s-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/swin-s-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(arch='small', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)))
