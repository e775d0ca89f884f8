# The chosen model of the joint attention + shape search in /tmp/meas/joint_re:
# the highest proxy validation accuracy of its Pareto front (evaluation 18, accuracy 0.6665);
# 0.168 M parameters, 0.0231 GMACs at 224 px, 1000 classes.
# Use it as a second _base_ of a real config and take its dicts:
#
#   ImageNet (mmpretrain's TimmClassifier around timm's attnzero_vit):
#       _base_ = ['<attnzero>/mmconfigs/_base_/in1k_8xb128-300e.py', '<this file>']
#       model = dict(model_name='attnzero_vit', **_base_.attnzero_vit)
#   Detection / segmentation (the DeiT trunk of this shape as a 4-level pyramid, AttnZeroDeiT):
#       _base_ = ['<attnzero>/mmconfigs/_base_/mask-rcnn_fpn_1x_coco.py', '<this file>']
#       model = dict(backbone=dict(_delete_=True, **_base_.attnzero_backbone),
#                    neck=dict(in_channels=_base_.attnzero_channels))
SHAPE = 'e48:hd24:h2,2,1,2:r2,2,2,2'
GENOME = 'i3n303:elu;min_max_normalize;l2norm_last;normalize;-;-:einsum2,matmul,product'
attnzero_vit = dict(arch=SHAPE, attn='attnzero', genome=GENOME)
attnzero_backbone = dict(type='AttnZeroDeiT', arch=dict(shape=SHAPE), attn='attnzero', genome=GENOME)
attnzero_channels = [48, 48, 48, 48]
