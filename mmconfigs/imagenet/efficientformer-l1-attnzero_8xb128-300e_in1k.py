# ImageNet-1k, EfficientFormer family: EfficientFormer-L1 with AttnZero in its attention block (the
# last block of stage 4). EfficientFormer-L3 and the softmax baselines inherit this file. No drop
# path (mmpretrain's EfficientFormer recipe). The published models were trained with hard
# distillation from a RegNetY-16GF teacher; this config trains without a teacher: the class and
# distillation heads are averaged (timm's EfficientFormer in non-distilled training).
_base_ = '../_base_/in1k_8xb128-300e.py'

model = dict(model_name='attnzero_efficientformer_l1', attn='attnzero', drop_path_rate=0.0)
