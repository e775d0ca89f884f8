# ImageNet-1k, PVTv2 family: PVTv2-B0 with AttnZero in all 4 stages. The other PVTv2 sizes and the
# softmax baselines inherit this file.
_base_ = '../_base_/in1k_8xb128-300e.py'

model = dict(model_name='attnzero_pvt_v2_b0', attn='attnzero', drop_path_rate=0.1)
