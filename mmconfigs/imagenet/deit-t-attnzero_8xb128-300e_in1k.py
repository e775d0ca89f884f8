# ImageNet-1k, DeiT family: DeiT-T with AttnZero in all blocks. The other DeiT sizes and the
# softmax baselines inherit this file.
_base_ = '../_base_/in1k_8xb128-300e.py'

model = dict(model_name='attnzero_deit_tiny', attn='attnzero', drop_path_rate=0.0)
