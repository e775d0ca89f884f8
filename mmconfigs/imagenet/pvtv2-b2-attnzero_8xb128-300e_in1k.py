# ImageNet-1k: PVTv2-B2, the PVTv2-B1 config with the 'b2' arch.
_base_ = './pvtv2-b1-attnzero_8xb128-300e_in1k.py'

model = dict(model_name='attnzero_pvt_v2_b2')
