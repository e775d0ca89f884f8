# COCO instance segmentation: Mask R-CNN + FPN, 1x schedule (12 epochs, lr steps after epochs 8 and
# 11, linear warm-up), batch 16 (8 GPUs x 2 images), with an attnzero backbone.
# Everything else comes from the installed mmdet bases. One family file per backbone family in
# ../mask_rcnn/ (e.g. mask-rcnn_pvt-t-attnzero_fpn_1x_coco.py) sets the backbone, the FPN input
# widths and the optimiser recipe; the other sizes and the softmax baselines inherit it.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['attnzero.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='AttnZeroPVT',
        arch='tiny',
        attn='softmax',
        genome=None,  # None: the paper's genome (Trial-105; Trial-140 for CSwin)
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        frozen_stages=-1,  # k >= 0: freeze the patch embedding and stages 1..k (fine-tuning)
        norm_eval=False,  # keep norm layers in eval mode (LayerNorm trunks: no effect)
        with_cp=False),  # True: activation checkpointing per block (less memory, same grads)
    neck=dict(in_channels=[64, 128, 320, 512]))

# PVT recipe: AdamW, lr 2e-4, weight decay 1e-4 (Swin/CSwin variants override it)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4))
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(enable=False, base_batch_size=16)
