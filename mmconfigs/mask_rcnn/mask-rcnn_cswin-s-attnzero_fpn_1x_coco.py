# COCO Mask R-CNN 1x: CSWin-S, the CSWin-T config with the 'small' arch.
_base_ = './mask-rcnn_cswin-t-attnzero_fpn_1x_coco.py'

# backbone weights: what mmconfigs/imagenet/cswin-s-attnzero_8xb128-300e_in1k.py writes
pretrained = 'work_dirs/cswin-s-attnzero_8xb128-300e_in1k/epoch_300.pth'
model = dict(backbone=dict(arch='small', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)))
