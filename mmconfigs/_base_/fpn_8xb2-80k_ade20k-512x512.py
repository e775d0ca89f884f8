# ADE20K semantic segmentation: Semantic FPN, 80k iterations at batch 16 (8 GPUs x 2), 512x512 crops,
# AdamW lr 1e-4, weight decay 1e-4, poly decay (power 0.9) -- the PVT recipe -- with an attnzero
# backbone. One family file per backbone family in ../sem_fpn/ sets the backbone and the FPN input
# widths; the other sizes and the softmax baselines inherit it.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['attnzero.mm'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
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
    neck=dict(in_channels=[64, 128, 320, 512]),
    decode_head=dict(num_classes=150))

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
