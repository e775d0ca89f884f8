# ImageNet-1k: PVTv2-B1, the PVTv2-B0 config with the 'b1' arch.
_base_ = './pvtv2-b0-attnzero_8xb128-300e_in1k.py'

model = dict(model_name='attnzero_pvt_v2_b1')
