# ImageNet-1k, PVT family: PVT-T with AttnZero in all 4 stages. The other PVT sizes and the softmax
# baselines inherit this file.
_base_ = '../_base_/in1k_8xb128-300e.py'

model = dict(model_name='attnzero_pvt_tiny', attn='attnzero', drop_path_rate=0.1)
