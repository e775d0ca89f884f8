# ADE20K semantic segmentation: UperNet + auxiliary FCN head, 160k iterations at batch 16
# (8 GPUs x 2), 512x512 crops, AdamW lr 6e-5, weight decay 0.01 (none on norms and position tables),
# 1500 warm-up iterations then poly decay (power 1.0) -- the Swin recipe -- with an attnzero backbone.
# One family file per backbone family in ../upernet/ sets the backbone and the head input widths;
# the other sizes and the softmax baselines inherit it.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_160k.py',
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
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=150),
    auxiliary_head=dict(in_channels=320, num_classes=150))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=1500, end=160000, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
